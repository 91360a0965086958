"""deploy/prometheus-alerts.yml: valid for Prometheus (promtool check rules), firing when it
should and not otherwise (promtool test rules), and every series it names is one /metrics
really serves."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from permanence.config import Settings
from permanence.runtime import Runtime
from permanence.web.app import create_app
from tests.factories import make_account

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus-alerts.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: prometheus; .ci/run installs it)"
)
JOB = {"job": "permanence"}


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    text = ",".join(f'{k}="{v}"' for k, v in {**JOB, "instance": "app1:8000", **labels}.items())
    return {"series": f"{name}{{{text}}}", "values": values}


def alert(name: str, at: str, *expected: dict[str, str]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [{"exp_labels": labels} for labels in expected],
    }


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@needs_promtool
def test_the_rules_fire_when_they_should(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    # Firing is what is tested here: the copy drops the annotations (promtool compares them
    # too); every rule has a summary, checked below.
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["annotations"]["summary"], rule["alert"]
            del rule["annotations"]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    slug = "plomberie-durand"
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    series("permanence_rights_requests_overdue", "0 0 1 1 1", account=slug),
                    series("permanence_rights_requests_overdue", "0 0 0 0 0", account="autre"),
                    series("permanence_breach_age_seconds", "172900+60x5", reference="V-1"),
                    series("permanence_breach_controllers_notified", "0x5", reference="V-1"),
                    series("permanence_breach_age_seconds", "172900+60x5", reference="V-2"),
                    series("permanence_breach_controllers_notified", "1x5", reference="V-2"),
                    series("permanence_database_up", "1 0 0 0 0"),
                    series("permanence_audit_checkpoint_age_seconds", "3600+60x5"),
                    series(
                        "permanence_deliveries",
                        "0 0 1 1 1",
                        account=slug,
                        channel="email",
                        state="failed",
                    ),
                ],
                "alert_rule_test": [
                    alert("PermanenceRightsRequestOverdue", "1m"),
                    alert(
                        "PermanenceRightsRequestOverdue",
                        "3m",
                        {**JOB, "account": slug, "severity": "ticket"},
                    ),
                    alert(
                        "PermanenceBreachNotNotified48h",
                        "4m",
                        {**JOB, "reference": "V-1", "severity": "page"},
                    ),
                    alert("PermanenceDatabaseDown", "2m"),
                    alert("PermanenceDatabaseDown", "4m", {**JOB, "severity": "page"}),
                    alert("PermanenceNoAuditCheckpoint", "4m"),
                    alert(
                        "PermanenceDeliveriesFailing",
                        "4m",
                        {**JOB, "account": slug, "channel": "email", "severity": "ticket"},
                    ),
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    done = subprocess.run(
        [PROMTOOL, "test", "rules", "tests.yml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_series_the_rules_name_is_served(rt: Runtime, settings: Settings) -> None:
    settings.metrics_token = "token-for-the-rules-test"
    make_account(rt, "plomberie-durand")
    client = TestClient(create_app(rt))
    assert client.get("/healthz").status_code == 200  # one request for the histogram
    scrape = client.get("/metrics", headers={"Authorization": f"Bearer {settings.metrics_token}"})
    assert scrape.status_code == 200
    served = set(re.findall(r"^# TYPE (permanence_\w+) ", scrape.text, flags=re.MULTILINE))
    served |= {f"{name}_bucket" for name in served}
    named = set(re.findall(r"\b(permanence_[a-z0-9_]+)", RULES.read_text()))
    missing = named - served
    # The breach and checkpoint series appear once there is a breach or a checkpoint; their
    # families are declared in every scrape.
    assert missing == set(), missing
