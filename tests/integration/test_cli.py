"""The command line, run as a user would: a subprocess, real files, real database."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, pool, text

from permanence.config import Settings
from permanence.demo.loader import demo_callers
from tests.conftest import PG_OWNER_URL, PG_URL, cli_env, run_cli

PERMANENCE = [sys.executable, "-m", "permanence"]


def run(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = run_cli(env, *args)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def _needles() -> list[bytes]:
    """Every way a demo caller's identifiers could appear in clear."""
    out: list[bytes] = []
    for callers in demo_callers().values():
        for c in callers:
            digits = c.phone.replace(" ", "")
            for s in (
                f"{c.first} {c.last}",
                f"{c.last} {c.first}",
                c.phone,
                digits,
                "+33" + digits[1:],
            ):
                out += [s.encode(), s.encode("utf-16-le")]
            if c.email:
                out.append(c.email.encode())
    return out


@pytest.fixture
def initialised(settings: Settings) -> dict[str, str]:
    env = cli_env(settings)
    if not PG_URL:
        (settings.data_dir / "permanence.db").unlink()  # init makes the database itself
    del env["PERMANENCE_MASTER_KEY"]  # init makes the key file itself
    run(
        env,
        "init",
        "--admin-email",
        "admin@permanence.example",
        "--admin-password",
        "un mot de passe solide",
    )
    return env


def test_init_makes_a_private_key_file_and_refuses_to_overwrite_it(
    initialised: dict[str, str], settings: Settings
) -> None:
    key = settings.data_dir / "master.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    proc = run(
        initialised,
        "init",
        "--admin-email",
        "x@y.fr",
        "--admin-password",
        "autre mot de passe",
        ok=False,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0
    assert "refusing to overwrite" in proc.stderr
    assert key.read_bytes() == before


def test_demo_data_is_nowhere_in_clear(initialised: dict[str, str], settings: Settings) -> None:
    run(initialised, "demo")
    needles = _needles()
    assert len(needles) > 100
    # Every row of every table, as the database returns it.
    url = PG_OWNER_URL if PG_URL else settings.effective_database_url
    engine = create_engine(url, poolclass=pool.NullPool)
    rows = 0
    with engine.connect() as conn:
        accounts = [str(a) for a in conn.execute(text("SELECT id FROM accounts")).scalars()]
        conn.commit()
        # Under row-level security each account's rows are seen with that account set.
        for account in [""] + (accounts if PG_URL else []):
            with conn.begin():
                if PG_URL:
                    conn.execute(
                        text("SELECT set_config('app.account_id', :a, true)"), {"a": account}
                    )
                for table in inspect(conn).get_table_names():
                    for row in conn.execute(text(f"SELECT * FROM {table}")):
                        rows += 1
                        blob = repr(tuple(row)).encode()
                        for n in needles:
                            assert n not in blob, f"clear personal data in table {table}"
    engine.dispose()
    assert rows > 500
    if not PG_URL:
        files = [p for p in settings.data_dir.iterdir() if p.name.startswith("permanence.db")]
        assert files
        for path in files:
            data = path.read_bytes()
            for n in needles:
                assert n not in data, f"clear personal data in {path.name}"


@pytest.mark.skipif(bool(PG_URL), reason="edits the SQLite file directly")
def test_audit_verify_names_the_changed_entry(
    initialised: dict[str, str], settings: Settings
) -> None:
    run(initialised, "demo")
    assert "intact" in run(initialised, "audit", "verify").stdout
    db = sqlite3.connect(settings.data_dir / "permanence.db")
    body = db.execute("SELECT body FROM audit_log WHERE seq = 42").fetchone()[0]
    i = body.index('"action":"') + 10
    changed = body[:i] + chr(ord(body[i]) ^ 1) + body[i + 1 :]  # one byte
    db.execute("UPDATE audit_log SET body = ? WHERE seq = 42", (changed,))
    db.commit()
    db.close()
    proc = run(initialised, "audit", "verify", ok=False)
    assert proc.returncode == 1
    assert "entry 42" in proc.stderr


def test_checkpoint_export_and_verify(initialised: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "cp.json"
    run(initialised, "audit", "checkpoint", "--out", str(out))
    # the stored checkpoint, its line in PERMANENCE_AUDIT_CHECKPOINT_FILE and the exported
    # copy all match the chain
    assert "3 checkpoint(s)" in run(initialised, "audit", "verify", "--checkpoint", str(out)).stdout


def test_keys_rotate_then_everything_still_opens(initialised: dict[str, str]) -> None:
    run(initialised, "demo")
    proc = run(initialised, "keys", "rotate", "--account", "cabinet-lefevre")
    assert "cabinet-lefevre: key version 2, 15 data keys re-wrapped" in proc.stdout
    proc = run(initialised, "keys", "rotate")
    assert "cabinet-lefevre: key version 3" in proc.stdout
    assert "plomberie-durand: key version 2" in proc.stdout
    assert "intact" in run(initialised, "audit", "verify").stdout


def test_mandate_round_trip_through_the_cli(initialised: dict[str, str], tmp_path: Path) -> None:
    run(initialised, "demo")
    exported = run(initialised, "mandate", "export", "--account", "plomberie-durand").stdout
    assert "intervention" in exported
    path = tmp_path / "m.yaml"
    path.write_text(exported)
    assert (
        "version 2 stored"
        in run(initialised, "mandate", "import", str(path), "--account", "plomberie-durand").stdout
    )


def test_invalid_mandate_lists_each_problem(initialised: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "account: x\nkind: other\ncontroller: {name: X, address: A, contact_email: a@b.fr,"
        " dpo: null, rights_contact: a@b.fr}\ndids: []\n"
        "notice: {version: '1', layer1_fr: Bonjour}\n"
        "purposes:\n  - code: message\n    label_fr: Message\n    fields:\n"
        "      - {name: note, type: free_text, category: health, required: true}\n"
        "    retention: {message: P1M}\n"
    )
    proc = run(initialised, "mandate", "validate", str(bad), ok=False)
    assert proc.returncode != 0
    assert "legal_basis" in proc.stderr or "legal basis" in proc.stderr


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERMANENCE_")}
    env["PERMANENCE_DATA_DIR"] = str(tmp_path / "nothing-here")
    proc = run(env, "audit", "verify", ok=False)
    assert proc.returncode != 0
    assert proc.stderr.startswith("error: no master key")
    assert proc.stderr.strip().count("\n") == 0
    env["PERMANENCE_BLIND_INDEX_BITS"] = "not-a-number"
    proc = run(env, "audit", "verify", ok=False)
    assert "PERMANENCE_BLIND_INDEX_BITS" in proc.stderr
