"""The command line for scripts and for people (issue 25): ``--format json`` on the reporting
commands, parsed here as a script would; the exit codes of docs/cli.md; a progress bar on a
terminal and none in a pipe; shell completion that installs and completes."""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from permanence.breaches import service as breaches
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.db import utcnow
from permanence.rights import service as rights
from permanence.rights.model import Kind
from permanence.runtime import Runtime
from tests.conftest import cli_env, free_port, run_cli
from tests.factories import ctx_for, make_account, make_caller

ROOT = Path(__file__).resolve().parents[2]
SLUG = "plomberie-durand"


def as_json(env: dict[str, str], *args: str, exit_code: int = 0) -> Any:
    proc = run_cli(env, *args, "--format", "json")
    assert proc.returncode == exit_code, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def scripted(rt: Runtime, settings: Settings) -> dict[str, str]:
    """An account with an on-time and an overdue request, and a breach 50 hours old."""
    account = make_account(rt, SLUG)
    make_account(rt, "cabinet-lefevre")
    make_caller(rt, account.id)
    now = utcnow()
    with rt.db.session(ctx_for(account.id, Role.CLIENT)) as s:
        for received in (now - dt.timedelta(days=2), now - dt.timedelta(days=40)):
            rights.submit(
                s,
                rt.keyring,
                rights.Intake(
                    kind=Kind.ACCESS,
                    requester=rights.Requester(phone="06 39 98 12 34"),
                    verified_by_controller=True,
                    received_at=received,
                ),
            )
    with rt.db.session(AccessContext.system("test:breach")) as s:
        b = breaches.open_breach(s, aware_at=now - dt.timedelta(hours=50), nature="vol")
        reference = breaches.breach_view(s, b.id).reference
    env = cli_env(settings)
    env["PERMANENCE_SMTP_HOST"], env["PERMANENCE_SMTP_PORT"] = "127.0.0.1", str(free_port())
    env["REFERENCE"] = reference
    return env


def test_reporting_commands_answer_json(scripted: dict[str, str]) -> None:
    env = scripted
    requests = as_json(env, "rights", "list", "--account", SLUG)
    assert requests["account"] == SLUG
    assert sorted(r["overdue"] for r in requests["requests"]) == [False, True]
    assert {r["kind"] for r in requests["requests"]} == {"access"}
    for r in requests["requests"]:
        dt.datetime.fromisoformat(r["due_at"])
        assert isinstance(r["days_left"], int)

    [breach] = as_json(env, "breach", "list")
    assert breach["reference"] == env["REFERENCE"]
    assert breach["controller_clock"]["state"] == "overdue" and breach["overdue"] is True
    dt.datetime.fromisoformat(breach["aware_at"])

    sent = as_json(env, "deliveries", "run")
    assert set(sent) == {"escalated", "sent", "delivered", "retrying", "failed", "cancelled"}

    swept = as_json(env, "retention", "run", "--dry-run")
    assert swept["dry_run"] is True and swept["skipped"] is False
    assert isinstance(swept["total"], int) and isinstance(swept["counts"], list)

    chain = as_json(env, "audit", "verify")
    assert chain["ok"] is True and chain["entries"] > 0 and chain["broken_seq"] is None

    month = utcnow().strftime("%Y-%m")
    usage = as_json(env, "stats", "usage", "--account", SLUG, "--month", month)
    assert usage["account"] == SLUG and usage["month"] == month

    # The overdue request and the breach fail checks: exit 1, and the document still parses.
    report = as_json(env, "compliance", "check", exit_code=1)
    assert report["passed"] is False
    failed = {c["code"] for c in report["checks"] if not c["passed"]}
    assert failed and all(isinstance(c["evidence"], list) for c in report["checks"])


def test_exit_codes_are_the_documented_ones(scripted: dict[str, str]) -> None:
    """docs/cli.md's table: 0 done, 1 a check failed or the command could not do it, 2 the
    command line or the configuration is wrong."""
    env = scripted
    table = (ROOT / "docs" / "cli.md").read_text()
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |"):
        assert code in table
    assert run_cli(env, "audit", "verify").returncode == 0
    assert run_cli(env, "compliance", "check").returncode == 1
    assert run_cli(env, "rights", "list", "--account", "nobody").returncode == 1
    assert run_cli(env, "rights", "list", "--account", SLUG, "--format", "xml").returncode == 2
    assert run_cli(env, "retention", "run", "--no-such-option").returncode == 2
    bad_setting = {**env, "PERMANENCE_DELIVERY_INTERVAL": "often"}
    assert run_cli(bad_setting, "deliveries", "run").returncode == 2


def _in_a_terminal(env: dict[str, str], *args: str) -> str:
    """Run the command with a pseudo-terminal as its standard error (and output)."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "permanence", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    out = b""
    while True:
        ready, _, _ = select.select([main], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(main)
    assert proc.returncode == 0, out
    return out.decode(errors="replace")


def test_long_commands_show_progress_on_a_terminal_only(scripted: dict[str, str]) -> None:
    env = {**scripted, "COLUMNS": "100", "TERM": "xterm"}
    shown = _in_a_terminal(env, "retention", "run")
    assert "retention sweep" in shown
    piped = run_cli(env, "retention", "run")
    assert piped.returncode == 0
    assert "retention sweep" not in piped.stderr + piped.stdout
    assert "\x1b[" not in piped.stderr + piped.stdout


def test_backup_restore_and_journal_replay_show_progress_on_a_terminal_only(
    rt: Runtime, scripted: dict[str, str], tmp_path: Path
) -> None:
    import base64

    key = base64.b64encode(b"b" * 32).decode()
    env = {**scripted, "COLUMNS": "100", "TERM": "xterm", "PERMANENCE_BACKUP_KEY": key}
    rt.close()  # the service is stopped for a restore
    shown = _in_a_terminal(env, "backup", str(tmp_path / "one.pmbk"))
    assert "backing up" in shown
    shown = _in_a_terminal(
        env, "restore", str(tmp_path / "one.pmbk"), "--force", "--no-erasure-since"
    )
    for bar in ("checking the archive", "restoring files", "erasure journal replay"):
        assert bar in shown, shown
    assert "erasure journal replay" in _in_a_terminal(env, "rights", "journal-replay")
    piped = [
        run_cli(env, "backup", str(tmp_path / "two.pmbk")),
        run_cli(env, "restore", str(tmp_path / "two.pmbk"), "--force", "--no-erasure-since"),
        run_cli(env, "rights", "journal-replay"),
    ]
    for proc in piped:
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout + proc.stderr
        for bar in ("backing up", "checking the archive", "restoring files", "journal replay"):
            assert bar not in out
        assert "\x1b[" not in out


def test_shell_completion_installs_and_completes(tmp_path: Path, settings: Settings) -> None:
    permanence = str(Path(sys.executable).with_name("permanence"))
    env = {**cli_env(settings), "HOME": str(tmp_path), "SHELL": "/bin/bash"}
    proc = subprocess.run(
        [permanence, "--install-completion", "bash"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    bashrc = (tmp_path / ".bashrc").read_text()
    assert "permanence" in bashrc
    completing = subprocess.run(
        [permanence],
        env={
            **env,
            "_PERMANENCE_COMPLETE": "complete_bash",
            "COMP_WORDS": "permanence reten",
            "COMP_CWORD": "1",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert "retention" in completing.stdout.split()


def test_the_backup_units_commands_write_dated_files_into_a_directory(
    tmp_path: Path, settings: Settings, rt: Runtime
) -> None:
    """deploy/permanence-backup.service gives a directory: each run adds a dated file."""
    make_account(rt, SLUG)
    env = cli_env(settings)
    key = tmp_path / "backup.key"
    assert run_cli(env, "keys", "backup-key", str(key)).returncode == 0
    env["PERMANENCE_BACKUP_KEY_FILE"] = str(key)
    backups = tmp_path / "backups"
    backups.mkdir()
    made = run_cli(env, "backup", str(backups))
    assert made.returncode == 0, made.stderr
    journal = run_cli(env, "rights", "journal-export", "--out", str(backups))
    assert journal.returncode == 0, journal.stderr
    [archive] = backups.glob("permanence-*.pmbk")
    assert len(list(backups.glob("erasures-*.jsonl"))) == 1
    checked = run_cli(env, "restore", str(archive), "--check")
    assert checked.returncode == 0 and "archive intact" in checked.stdout
