"""docs/deployment.md runs: every command block is marked with the test that runs it (or says
why it cannot run here), and the blocks that can run are run here, as written, with only the
paths, hosts and names of this machine put in."""

from __future__ import annotations

import ast
import base64
import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from permanence import schema
from permanence.config import Settings
from permanence.crypto.masterkey import load_master_key
from tests.conftest import PG_URL, cli_env, run_cli

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deployment.md"
BLOCK = re.compile(r"(?P<mark><!--[^\n]*-->\n)?```(?P<lang>\w+)\n(?P<body>.*?)```", re.DOTALL)
INSTALLED = "/opt/permanence/venv/bin/permanence"
ADMIN_PASSWORD = "Mot de passe de l'administrateur 2026"


def blocks() -> list[tuple[str, str, str]]:
    """(mark, language, body) of every fenced block of the document."""
    return [
        ((m["mark"] or "").strip(), m["lang"], m["body"]) for m in BLOCK.finditer(DOC.read_text())
    ]


def block_run_by(test_name: str) -> str:
    found = [body for mark, _lang, body in blocks() if mark.endswith(f"::{test_name} -->")]
    assert len(found) == 1, f"no block of docs/deployment.md is marked as run by {test_name}"
    return found[0]


def test_every_command_block_says_what_runs_it() -> None:
    found = blocks()
    assert len(found) >= 8
    for mark, lang, body in found:
        assert lang in {"sh", "sql"}, f"unexpected block language {lang}"
        assert mark.startswith(("<!-- run by: ", "<!-- not run here: ")), (
            f"block without a mark: {body[:80]!r}"
        )
        if mark.startswith("<!-- run by: "):
            target = mark.removeprefix("<!-- run by: ").split()[0]
            path, _, name = target.partition("::")
            tree = ast.parse((ROOT / path).read_text())
            names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            assert name in names, f"{target} does not exist"


def test_the_documented_units_and_files_exist() -> None:
    doc = DOC.read_text()
    for path in re.findall(r"`(deploy/[\w.-]+)`", doc):
        assert (ROOT / path).exists(), path
    for name in re.findall(r"`(tests/[\w/]+\.py)`", doc):
        assert (ROOT / name).exists(), name


def sh(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


def localised(script: str, etc: Path, home: Path, data: Path) -> str:
    """The block with this machine's places: /etc/permanence, /root and the installed program."""
    here = str(Path(sys.executable).parent / "permanence")
    for old, new in (
        ("/etc/permanence", str(etc)),
        ("/root/", f"{home}/"),
        (INSTALLED, here),
        ("/var/lib/permanence", str(data)),
    ):
        script = script.replace(old, new)
    return script


def install_env_files(etc: Path, settings: Settings) -> None:
    """deploy/*.env as section 1 installs them, pointed at the test database."""
    etc.mkdir()
    app_url = settings.effective_database_url
    owner_url = settings.effective_migration_url
    env = (ROOT / "deploy" / "permanence.env").read_text()
    migrate = (ROOT / "deploy" / "migrate.env").read_text()
    for old, new in (
        ("postgresql+psycopg://permanence_app@db.internal:5432/permanence", app_url),
        ("/var/lib/permanence", str(settings.data_dir)),
    ):
        assert old in env
        env = env.replace(old, new)
    old = "postgresql+psycopg://permanence_owner@db.internal:5432/permanence"
    assert old in migrate
    migrate = migrate.replace(old, owner_url)
    if settings.database_app_role:
        migrate = migrate.replace("=permanence_app", f"={settings.database_app_role}")
    (etc / "permanence.env").write_text(env)
    (etc / "migrate.env").write_text(migrate)
    # Password files: the test cluster trusts local connections, so the passwords are unused.
    (etc / "pgpass").write_text("127.0.0.1:5432:*:permanence_app:unused\n")
    (etc / "pgpass-owner").write_text("127.0.0.1:5432:*:permanence_owner:unused\n")


def shell_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERMANENCE_")}
    env["ADMIN_PASSWORD"] = ADMIN_PASSWORD
    return env


def test_the_first_run_block_initialises_the_deployment(settings: Settings, tmp_path: Path) -> None:
    etc, home = tmp_path / "etc", tmp_path / "root"
    home.mkdir()
    install_env_files(etc, settings)
    if not PG_URL:
        (settings.data_dir / "permanence.db").unlink()  # init makes the database itself
    script = localised(
        block_run_by("test_the_first_run_block_initialises_the_deployment"),
        etc,
        home,
        settings.data_dir,
    )
    done = sh(script, shell_env(), tmp_path)
    assert "administrator: admin@permanence.example.fr" in done.stdout
    assert "TOTP enrolment URI" in done.stdout
    key = etc / "master.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not (home / "pgpass-init").exists()
    assert schema.current_revision(settings.effective_migration_url) is not None
    # The service, as the unit starts it, reads the data with that key.
    env = {**cli_env(settings), "PERMANENCE_MASTER_KEY_FILE": str(key)}
    del env["PERMANENCE_MASTER_KEY"]
    checked = run_cli(env, "audit", "verify")
    assert checked.returncode == 0, checked.stderr


def test_the_kms_block_wraps_and_unwraps_the_master_key(tmp_path: Path) -> None:
    """The block, run as root: only the wrapped key stays; the service's group (here the
    ``postgres`` user's, standing in for ``permanence``) can run the unwrap command, another
    user cannot read either file."""
    if shutil.which("openssl") is None or shutil.which("shred") is None:
        pytest.skip("openssl or shred is not installed")
    import grp
    import pwd
    import tempfile

    service_user = "postgres"
    try:
        group = grp.getgrgid(pwd.getpwnam(service_user).pw_gid).gr_name
    except KeyError:
        pytest.skip("no 'postgres' user to play the service's user")
    # Not under tmp_path (mode 0700): the service's user must reach the files.
    etc = Path(tempfile.mkdtemp(prefix="permanence-etc-"))
    etc.chmod(0o755)
    try:
        key_text = subprocess.run(
            ["openssl", "rand", "-base64", "32"], capture_output=True, text=True, check=True
        ).stdout
        (etc / "master.key").write_text(key_text)
        (etc / "permanence.env").write_text((ROOT / "deploy" / "permanence.env").read_text())
        block = block_run_by("test_the_kms_block_wraps_and_unwraps_the_master_key")
        assert "chgrp permanence " in block
        script = localised(block, etc, tmp_path, tmp_path / "data")
        sh(script.replace("chgrp permanence ", f"chgrp {group} "), shell_env(), tmp_path)
        assert not (etc / "master.key").exists()  # only the wrapped key stays on the host
        assert key_text.strip().encode() not in (etc / "master.key.enc").read_bytes()
        for name in ("kek", "master.key.enc"):
            st = (etc / name).stat()
            assert stat.S_IMODE(st.st_mode) == 0o640, name
            assert grp.getgrgid(st.st_gid).gr_name == group, name
        # The environment file, read as systemd and the shell read it, gives the command...
        line = (etc / "permanence.env").read_text().splitlines()[-1]
        name, _, value = line.partition("=")
        assert name == "PERMANENCE_MASTER_KEY_COMMAND"
        read = sh(f"set -a; . {etc / 'permanence.env'}; set +a; printenv {name}", {}, tmp_path)
        assert read.stdout.strip() == value.strip('"')
        # ...and the keyring gets the very key that was wrapped.
        settings = Settings(master_key_command=read.stdout.strip())
        assert load_master_key(settings) == base64.b64decode(key_text)
        if os.geteuid() == 0 and shutil.which("runuser"):
            as_service = subprocess.run(
                ["runuser", "-u", service_user, "--", *read.stdout.split()],
                capture_output=True,
                text=True,
                check=False,
            )
            assert as_service.returncode == 0, as_service.stderr
            assert base64.b64decode(as_service.stdout) == base64.b64decode(key_text)
            for target in ("kek", "master.key.enc"):
                other = subprocess.run(
                    ["runuser", "-u", "nobody", "--", "cat", str(etc / target)],
                    capture_output=True,
                    check=False,
                )
                assert other.returncode != 0 and not other.stdout, target
    finally:
        shutil.rmtree(etc, ignore_errors=True)


def _superuser_url() -> str | None:
    if not PG_URL or shutil.which("psql") is None:
        return None
    url = make_url(PG_URL).set(username="postgres", database="postgres", password=None)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            if not conn.execute(
                text("SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'")
            ).scalar():
                return None
    except OperationalError:
        # The one condition that justifies the skip: no superuser can connect (refused,
        # authentication failed). Anything else is a failure of the test, not a skip.
        return None
    finally:
        engine.dispose()
    return url.render_as_string(hide_password=False).replace("postgresql+psycopg", "postgresql")


def test_the_roles_block_gives_an_application_role_under_row_level_security() -> None:
    admin = _superuser_url()
    if admin is None:
        pytest.skip("needs PostgreSQL with superuser access (.ci/run's PostgreSQL pass)")
    suffix = uuid.uuid4().hex[:8]
    owner, app, db = f"pdoc_owner_{suffix}", f"pdoc_app_{suffix}", f"pdoc_{suffix}"
    sql = block_run_by("test_the_roles_block_gives_an_application_role_under_row_level_security")
    sql = re.sub(r"\bpermanence_owner\b", owner, sql)
    sql = re.sub(r"\bpermanence_app\b", app, sql)
    sql = re.sub(r"\bpermanence\b", db, sql)
    host = make_url(PG_URL or "").host or "127.0.0.1"
    psql = ["psql", "-v", "ON_ERROR_STOP=1", "-q", admin]
    try:
        done = subprocess.run(
            [*psql], input=sql, check=False, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        owner_url = f"postgresql+psycopg://{owner}@{host}:5432/{db}"
        app_url = f"postgresql+psycopg://{app}@{host}:5432/{db}"
        schema.upgrade(owner_url, app)  # what permanence-migrate.service does
        engine = create_engine(app_url, poolclass=pool.NullPool)
        try:
            with engine.connect() as conn:
                row = conn.execute(
                    text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r"),
                    {"r": app},
                ).one()
                assert tuple(row) == (False, False)
                # Row-level security is forced on account-owned tables for this role.
                forced = conn.execute(
                    text("SELECT relforcerowsecurity FROM pg_class WHERE relname = 'messages'")
                ).scalar()
                assert forced is True
                conn.rollback()
                with pytest.raises(Exception, match="permission denied"):
                    conn.execute(text("UPDATE audit_log SET seq = seq"))
        finally:
            engine.dispose()
    finally:
        # One statement per -c: DROP DATABASE cannot run inside a transaction block.
        subprocess.run(
            [
                *psql,
                "-c",
                f"DROP DATABASE IF EXISTS {db} WITH (FORCE)",
                "-c",
                f"DROP ROLE IF EXISTS {app}",
                "-c",
                f"DROP ROLE IF EXISTS {owner}",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )


def test_the_first_steps_make_the_daily_jobs_pass(settings: Settings, tmp_path: Path) -> None:
    """A fresh installation (section 3's init), its documented first steps, then every command
    of the daily unit, through the documented wrapper: all succeed (issue 25: the daily unit
    failed from the first day)."""
    etc, home, sbin = tmp_path / "etc", tmp_path / "root", tmp_path / "sbin"
    private_tmp = tmp_path / "tmp"
    home.mkdir()
    sbin.mkdir()
    private_tmp.mkdir()
    install_env_files(etc, settings)
    if not PG_URL:
        (settings.data_dir / "permanence.db").unlink()
    init = block_run_by("test_the_first_run_block_initialises_the_deployment")
    sh(localised(init, etc, home, settings.data_dir), shell_env(), tmp_path)
    wrapper = sbin / "permanence-admin"
    steps = localised(
        block_run_by("test_the_first_steps_make_the_daily_jobs_pass"), etc, home, settings.data_dir
    )
    steps = steps.replace("deploy/permanence-admin", str(ROOT / "deploy" / "permanence-admin"))
    steps = steps.replace("/usr/local/sbin/permanence-admin", str(wrapper))
    steps = re.sub(r"^permanence-admin ", f"{wrapper} ", steps, flags=re.MULTILINE)
    env = {
        **shell_env(),
        "PERMANENCE_ETC": str(etc),
        "PERMANENCE_RUN_AS": "root",  # the test runs as root; a host has its 'permanence' user
        "PERMANENCE_PROGRAM": str(Path(sys.executable).parent / "permanence"),
        # The wrapper's copies of the keys go under a temporary folder of this test's own:
        # the suite's other run (SQLite and PostgreSQL run side by side) has its own at once.
        "TMPDIR": str(private_tmp),
    }
    done = sh(steps, env, tmp_path)
    assert "1 training record(s) written" in done.stdout and "undertaking version" in done.stdout
    assert "FAIL" not in done.stdout
    # The daily unit's commands, in its order, as it runs them.
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    unit = (ROOT / "deploy" / "permanence-daily.service").read_text()
    commands = [
        line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")
    ]
    assert len(commands) == 5
    for command in commands:
        argv = command.replace("/var/lib/permanence-checkpoints", str(checkpoints)).split()
        assert argv[0] == INSTALLED
        ran = subprocess.run(
            [str(wrapper), *argv[1:]], env=env, capture_output=True, text=True, check=False
        )
        assert ran.returncode == 0, (command, ran.stdout, ran.stderr)
    # permanence.env's checkpoint file, moved under the test's data directory's parent.
    published = Path(f"{settings.data_dir}-checkpoints") / "audit-checkpoints.jsonl"
    assert published.read_text().count("\n") >= 1
    # Nothing the wrapper copied is left behind.
    assert not list(private_tmp.glob("tmp.*/master.key"))
