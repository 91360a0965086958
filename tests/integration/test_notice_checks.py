"""The spoken first layer says what the CNIL expects (who, why, rights, where the rest is):
a new mandate version that does not is refused with what is missing, the command line says
so, and the compliance check lists any account whose stored notice fails it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from permanence.accounts.model import MandateVersion
from permanence.accounts.service import _canonical_json, import_mandate
from permanence.compliance import checks
from permanence.config import Settings
from permanence.context import AccessContext
from permanence.errors import ValidationFailed
from permanence.mandates.errors import MandateInvalid
from permanence.mandates.layer2 import first_layer_problems
from permanence.mandates.parsing import parse_mandate
from permanence.runtime import Runtime
from tests.conftest import cli_env, run_cli
from tests.factories import demo_mandate_text, make_account

SPOKEN = (
    "Plomberie Durand, bonjour, vous êtes en relation avec notre service d'accueil téléphonique."
)
# The plumber's first layer without its rights and its pointer to the rest.
SHORT = demo_mandate_text("plomberie-durand").replace(
    demo_mandate_text("plomberie-durand").split("layer1_fr: >-\n", 1)[1].split("  layer1_en")[0],
    f"    {SPOKEN} Vos coordonnées servent à organiser l'intervention demandée.\n",
    1,
)


def test_the_problems_say_what_is_missing() -> None:
    assert first_layer_problems(parse_mandate(demo_mandate_text("plomberie-durand"))) == []
    problems = first_layer_problems(parse_mandate(SHORT))
    assert problems == [
        "notice.layer1_fr does not say that the caller has rights over the data (access, "
        "rectification, erasure...)",
        "notice.layer1_fr does not say where to find the full information (e.g. 'le détail vous "
        "est envoyé par SMS')",
    ]
    anonymous = demo_mandate_text("cabinet-lefevre").replace(
        "Cabinet du docteur Lefèvre, bonjour.", "Bonjour.", 1
    )
    assert first_layer_problems(parse_mandate(anonymous)) == [
        "notice.layer1_fr does not say who collects the data: name the controller "
        "('Cabinet du Dr Claire Lefèvre, médecin généraliste')"
    ]
    english = demo_mandate_text("cabinet-lefevre").replace(
        "you may access, correct or\n    erase them. ", "", 1
    )
    assert [p for p in first_layer_problems(parse_mandate(english)) if "layer1_en" in p] == [
        "notice.layer1_en does not say that the caller has rights over the data (access, "
        "rectification, erasure...)"
    ]


def test_a_version_with_an_incomplete_first_layer_is_refused_and_nothing_is_stored(
    rt: Runtime,
) -> None:
    account = make_account(rt, "plomberie-durand")
    with rt.db.session(AccessContext.system("test", account.id)) as s:
        with pytest.raises(ValidationFailed) as caught:
            import_mandate(s, SHORT, account_id=account.id)
        assert any("where to find the full information" in p for p in caught.value.problems)
    with rt.db.session(AccessContext.system("test", account.id), readonly=True) as s:
        count = s.scalar(select(func.count()).where(MandateVersion.account_id == account.id))
    assert count == 1  # the demo version only


def test_the_compliance_check_lists_an_account_whose_stored_notice_fails(rt: Runtime) -> None:
    make_account(rt, "cabinet-lefevre")
    plumber = make_account(rt, "plomberie-durand")

    def result() -> checks.CheckResult:
        return next(r for r in checks.run_checks(rt) if r.code == "mandates.notice")

    assert result().passed
    # A version stored before the rule existed (written directly: import refuses it now).
    mandate = parse_mandate(SHORT).model_copy(update={"version": 2})
    document = _canonical_json(mandate)
    with rt.db.session(AccessContext.system("test", plumber.id)) as s:
        s.add(
            MandateVersion(
                account_id=plumber.id,
                version=2,
                document=document,
                sha256=hashlib.sha256(document.encode()).hexdigest(),
                notice_version=mandate.notice_version,
            )
        )
    failed = result()
    assert not failed.passed
    [line] = failed.evidence
    assert line.startswith("plomberie-durand: ") and "where to find the full information" in line


def test_the_command_refuses_an_incomplete_notice_and_warns_of_an_outside_page(
    settings: Settings, tmp_path: Path
) -> None:
    env = cli_env(settings)
    short = tmp_path / "short.yaml"
    short.write_text(SHORT)
    proc = run_cli(env, "mandate", "validate", str(short))
    assert proc.returncode != 0
    assert "does not say where to find the full information" in proc.stderr
    outside = tmp_path / "outside.yaml"
    outside.write_text(
        demo_mandate_text("plomberie-durand").replace(
            'version: "2025-02"',
            'version: "2025-02"\n  layer2_url: https://plomberie-durand.example/rgpd',
            1,
        )
    )
    proc = run_cli(env, "mandate", "validate", str(outside))
    assert proc.returncode == 0, proc.stderr
    assert "cannot check that page" in proc.stderr
    generated = tmp_path / "generated.yaml"
    generated.write_text(demo_mandate_text("plomberie-durand"))
    proc = run_cli(env, "mandate", "validate", str(generated))
    assert proc.returncode == 0 and "warning" not in proc.stderr


def test_the_keys_a_mandate_names_are_distinct_and_announced() -> None:
    def problems(notice_extra: str, text: str | None = None) -> list[str]:
        source = (text or demo_mandate_text("plomberie-durand")).replace(
            'version: "2025-02"', 'version: "2025-02"\n' + notice_extra, 1
        )
        try:
            parse_mandate(source)
        except MandateInvalid as exc:
            return exc.problems
        return []

    said = (
        demo_mandate_text("plomberie-durand")
        .replace("si vous le souhaitez.", "si vous le souhaitez : appuyez sur 1.", 1)
        .replace("by text message.", "by text message: press 1.", 1)
    )
    assert problems('  sms_key: "1"\n  english_key: "2"', said) == []
    assert problems('  sms_key: "9"', said.replace("appuyez sur 1", "appuyez sur 9")) == [
        "notice.sms_key and recording.objection_key are the same key (9)",
        "notice.layer1_en does not tell callers to press 9 (notice.sms_key) to receive the full "
        "notice by SMS",
    ]
    assert problems('  sms_key: "1"') == [
        "notice.layer1_fr does not tell callers to press 1 (notice.sms_key) to receive the full "
        "notice by SMS",
        "notice.layer1_en does not tell callers to press 1 (notice.sms_key) to receive the full "
        "notice by SMS",
    ]
    doc = yaml.safe_load(demo_mandate_text("cabinet-lefevre"))
    del doc["notice"]["layer1_en"]
    doc["notice"]["english_key"] = "2"
    with pytest.raises(MandateInvalid) as caught:
        parse_mandate(doc)
    assert caught.value.problems == [
        "notice.english_key offers English but notice.layer1_en is missing"
    ]
