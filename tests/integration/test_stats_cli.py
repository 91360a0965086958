"""The statistics commands: usage report of an account for a month, staff statistics purge."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pypdf import PdfReader

from permanence.config import Settings
from permanence.runtime import Runtime
from tests.conftest import cli_env
from tests.factories import make_account
from tests.integration.test_cli import run


def test_usage_report_and_purge_from_the_command_line(
    rt: Runtime, settings: Settings, tmp_path: Path
) -> None:
    make_account(rt, "plomberie-durand")
    env = cli_env(settings)
    out = run(env, "stats", "usage", "--account", "plomberie-durand", "--month", "2026-03")
    row = next(csv.DictReader(io.StringIO(out.stdout)))
    assert (row["account"], row["month"], row["calls_received"]) == (
        "plomberie-durand",
        "2026-03",
        "0",
    )
    pdf = tmp_path / "usage.pdf"
    run(
        env,
        "stats",
        "usage",
        "--account",
        "plomberie-durand",
        "--month",
        "2026-03",
        "--format",
        "pdf",
        "--out",
        str(pdf),
    )
    text = PdfReader(pdf).pages[0].extract_text()
    assert "Plomberie Durand" in text and "mars 2026" in text
    bad = run(
        env, "stats", "usage", "--account", "plomberie-durand", "--month", "03/2026", ok=False
    )
    assert bad.returncode != 0
    assert "YYYY-MM" in bad.stderr
    purge = run(env, "stats", "purge", "--dry-run")
    assert "0 operator-days due" in purge.stdout
