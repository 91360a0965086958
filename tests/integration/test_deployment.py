"""The production files (deploy/) and the settings they rely on: the systemd units verified by
systemd itself, the environment files against config.Settings, the master key fetched by a
command (a real local program plays the KMS client), and SQLite's one serving process."""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from permanence.cli import app
from permanence.cli.serve import _lock_sqlite_database
from permanence.config import Settings
from permanence.crypto.masterkey import load_master_key
from permanence.errors import ConfigurationError
from permanence.runtime import Runtime
from tests.conftest import PG_URL, TEST_MASTER_KEY, cli_env, run_cli
from tests.factories import make_account

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = sorted(DEPLOY.glob("*.service")) + sorted(DEPLOY.glob("*.timer"))
ENV_FILES = sorted(DEPLOY.glob("*.env"))
INSTALLED = "/opt/permanence/venv/bin/permanence"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian: systemd)"
)


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd reads an EnvironmentFile (comments and blanks skipped)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            value = value.strip()
            if value.startswith('"'):
                assert value.endswith('"') and value.count('"') == 2, f"{path.name}: {key}"
                value = value[1:-1]
            assert "'" not in value and "$" not in value, f"{path.name}: {key} needs quoting"
            out[key.strip()] = value
    return out


def unit_lines(key: str) -> list[tuple[str, str]]:
    return [
        (unit.name, line.split("=", 1)[1])
        for unit in UNITS
        for line in unit.read_text().splitlines()
        if line.startswith(f"{key}=")
    ]


def installed_copies(tmp_path: Path) -> list[Path]:
    """The units with the install path replaced by this environment's own ``permanence``."""
    here = Path(sys.executable).parent / "permanence"
    assert here.exists(), here
    out = []
    for unit in UNITS:
        text = unit.read_text()
        copy = tmp_path / unit.name
        copy.write_text(text.replace(INSTALLED, str(here)))
        out.append(copy)
    return out


# -- systemd ---------------------------------------------------------------------------------


def test_the_deploy_folder_has_the_documented_units() -> None:
    assert [u.name for u in UNITS] == [
        "permanence-backup.service",
        "permanence-daily.service",
        "permanence-migrate.service",
        "permanence.service",
        "permanence-backup.timer",
        "permanence-daily.timer",
    ]
    assert [e.name for e in ENV_FILES] == ["migrate.env", "permanence.env"]


@needs_systemd
def test_systemd_verifies_the_units_without_a_warning(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    copies = installed_copies(tmp_path)
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", *map(str, copies)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    # Unknown keys and bad values are only warnings for systemd: none is accepted here.
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


@needs_systemd
def test_systemd_would_reject_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt hardening key is reported."""
    assert SYSTEMD_ANALYZE is not None
    service = next(c for c in installed_copies(tmp_path) if c.name == "permanence.service")
    service.write_text(service.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="))
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(service)], capture_output=True, text=True, check=False
    )
    assert "Unknown key 'NoNewPrivilege'" in done.stderr


@needs_systemd
@pytest.mark.parametrize("unit", ["permanence.service"])
def test_the_service_is_hardened(tmp_path: Path, unit: str) -> None:
    """systemd's own exposure score (0 best, 10 worst) stays at 2 or below."""
    assert SYSTEMD_ANALYZE is not None
    installed_copies(tmp_path)
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", "--threshold=20", unit],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Overall exposure level for permanence.service: 1." in done.stdout


def test_every_command_the_units_run_exists() -> None:
    runner = CliRunner()
    commands = [line for _unit, line in unit_lines("ExecStart")]
    assert len(commands) == 9
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == INSTALLED
        result = runner.invoke(app, [*argv[1:], "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_the_master_key_reaches_the_service_as_a_credential() -> None:
    service = (DEPLOY / "permanence.service").read_text()
    assert "LoadCredential=master.key:/etc/permanence/master.key" in service
    assert "Environment=PERMANENCE_MASTER_KEY_FILE=%d/master.key" in service
    # The owner's database credentials are only the migration unit's.
    assert "migrate.env" not in service and "pgpass-owner" not in service
    assert "pgpass-owner" in (DEPLOY / "permanence-migrate.service").read_text()


# -- environment files -----------------------------------------------------------------------


def test_every_variable_the_deploy_files_set_is_a_setting() -> None:
    fields = {f"PERMANENCE_{name.upper()}" for name in Settings.model_fields}
    names = [k for path in ENV_FILES for k in env_file(path)]
    names += [
        line.split("=", 1)[0] for _unit, line in unit_lines("Environment") if "PERMANENCE_" in line
    ]
    assert names, "no variable found"
    for name in names:
        if name.startswith("PERMANENCE_"):
            assert name in fields, f"{name} is not a setting of config.Settings"
        else:
            assert name == "PGPASSFILE", name  # libpq's own
    docs = "".join(p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
    for name in names:
        # The README lists some families in short: `PERMANENCE_PROVIDER_NAME`, `_ADDRESS`.
        short = "`_" + name.split("_", 2)[-1] + "`"
        assert name in docs or short in docs, f"{name} is not documented"


def test_the_example_environment_is_a_valid_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in [k for k in os.environ if k.startswith("PERMANENCE_")]:
        monkeypatch.delenv(key)
    for path in ENV_FILES:
        for key, value in env_file(path).items():
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("PERMANENCE_MASTER_KEY_FILE", "/run/credentials/permanence/master.key")
    s = Settings()
    assert s.is_postgres and s.database_app_role == "permanence_app"
    assert s.effective_migration_url != s.effective_database_url  # two roles
    assert s.public_base_url.startswith("https://")
    assert s.forwarded_allow_ips == "127.0.0.1" and s.hds_hosting is False


# -- the master key from a command (a KMS client) -------------------------------------------


def wrap_with_openssl(tmp_path: Path, key_b64: str) -> str:
    """Plays the KMS: the master key encrypted under a key-encryption passphrase file, and the
    command that unwraps it (what `aws kms decrypt`, `gcloud kms decrypt` or `vault` would be)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    kek = tmp_path / "kek"
    kek.write_bytes(base64.b64encode(bytes(range(100, 132))))
    kek.chmod(0o600)
    wrapped = tmp_path / "master.key.enc"
    cipher = ["enc", "-aes-256-cbc", "-pbkdf2", "-salt", "-pass", f"file:{kek}"]
    subprocess.run([openssl, *cipher, "-out", str(wrapped)], input=key_b64.encode(), check=True)
    assert key_b64.encode() not in wrapped.read_bytes()
    return shlex.join([openssl, *cipher, "-d", "-in", str(wrapped)])


def test_the_master_key_command_is_run_and_its_output_is_the_key(tmp_path: Path) -> None:
    command = wrap_with_openssl(tmp_path, TEST_MASTER_KEY)
    s = Settings(data_dir=tmp_path, master_key_command=command)
    assert load_master_key(s) == base64.b64decode(TEST_MASTER_KEY)
    # PERMANENCE_MASTER_KEY still wins; the key file is not needed.
    assert not s.effective_master_key_file.exists()
    other = base64.b64encode(bytes(32)).decode()
    assert load_master_key(Settings(master_key=other, master_key_command=command)) == bytes(32)


def test_a_service_started_with_the_key_command_reads_the_data(
    rt: Runtime, settings: Settings, tmp_path: Path
) -> None:
    make_account(rt, "plomberie-durand")  # its keys are wrapped under the test master key
    env = cli_env(settings)
    del env["PERMANENCE_MASTER_KEY"]
    env["PERMANENCE_MASTER_KEY_COMMAND"] = wrap_with_openssl(tmp_path, TEST_MASTER_KEY)
    done = run_cli(env, "keys", "rotate")
    assert done.returncode == 0, done.stderr
    assert "plomberie-durand: key version 2" in done.stdout


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("false", "PERMANENCE_MASTER_KEY_COMMAND: 'false' exited with status 1"),
        ("/nonexistent/kms-client decrypt", "program 'kms-client' not found"),
        ("echo not-a-key", "master key in PERMANENCE_MASTER_KEY_COMMAND is not valid base64"),
        (f"echo {base64.b64encode(bytes(16)).decode()}", "must be 32 bytes"),
        ("'unbalanced", "PERMANENCE_MASTER_KEY_COMMAND is not a valid command line"),
    ],
)
def test_a_failing_key_command_is_a_clear_error_that_shows_no_output(
    command: str, message: str
) -> None:
    with pytest.raises(ConfigurationError) as err:
        load_master_key(Settings(master_key_command=command))
    assert message in err.value.message
    assert "not-a-key" not in err.value.message


def test_the_command_line_says_what_is_wrong_with_the_key_command(settings: Settings) -> None:
    env = cli_env(settings)
    del env["PERMANENCE_MASTER_KEY"]
    env["PERMANENCE_MASTER_KEY_COMMAND"] = "false"
    done = run_cli(env, "keys", "rotate")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: PERMANENCE_MASTER_KEY_COMMAND: 'false' exited with status 1"
    )


# -- SQLite: one serving process ------------------------------------------------------------


@pytest.mark.skipif(bool(PG_URL), reason="SQLite only: on PostgreSQL replicas are supported")
def test_a_second_server_on_the_same_sqlite_database_is_refused(settings: Settings) -> None:
    held = _lock_sqlite_database(settings)  # as a running 'serve' holds it
    assert held is not None
    try:
        done = subprocess.run(
            [sys.executable, "-m", "permanence", "serve", "--port", "9"],
            env=cli_env(settings),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1
        assert "another 'permanence serve' is already running on this SQLite database" in (
            done.stderr
        )
        assert "Traceback" not in done.stderr
    finally:
        held.close()
    # Once the first one is gone (even killed: the lock goes with the process), it is free.
    again = _lock_sqlite_database(settings)
    assert again is not None
    again.close()


# -- the service under MemoryDenyWriteExecute ------------------------------------------------

# The same refusal systemd's MemoryDenyWriteExecute=yes imposes, set by the kernel's own prctl
# (Linux 6.3+) in the process before it becomes `permanence serve`.
UNDER_MDWE = """
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(77)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit(78)
except PermissionError:
    pass
sys.argv = ["permanence", "serve", "--host", "127.0.0.1", "--port", sys.argv[1]]
from permanence.cli import main
main()
"""
PROBE = "import ctypes, sys; sys.exit(ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0)"


def _mdwe_supported() -> bool:
    return subprocess.run([sys.executable, "-c", PROBE], check=False).returncode == 0


@pytest.mark.slow
def test_the_service_works_when_memory_may_not_be_both_writable_and_executable(
    rt: Runtime, settings: Settings
) -> None:
    """The unit's MemoryDenyWriteExecute=yes: sign in (argon2), take a message (AES-GCM,
    the database driver), with W+X memory refused to the whole process."""
    import time

    import httpx

    from permanence.calls import service as calls
    from permanence.context import AccessContext, Role
    from tests.conftest import free_port
    from tests.factories import signed_in_operator

    if not _mdwe_supported():
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
    account = make_account(rt, "plomberie-durand")
    operator_id, token, csrf = signed_in_operator(rt)
    with rt.db.session(AccessContext(role=Role.OPERATOR, reason="test", actor_id=operator_id)) as s:
        call_id = calls.open_call(
            s, rt.keyring, dialled="+33240000001", caller_number="0199001234"
        ).call.id
    port = free_port()
    env = {**cli_env(settings), "PERMANENCE_DELIVERY_INTERVAL": "0"}
    proc = subprocess.Popen([sys.executable, "-c", UNDER_MDWE, str(port)], env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"serve exited under MDWE with status {proc.returncode}"
            assert time.monotonic() < deadline, "serve did not start under MDWE"
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        cookies = {"permanence_session": token}
        r = httpx.post(
            f"{base}/api/v1/accounts/{account.id}/calls/{call_id}/messages",
            json={
                "purpose": "intervention",
                "values": {
                    "last_name": "Martin",
                    "phone": "01 99 00 12 34",
                    "address": "3 rue des Lilas, 44000 Nantes",
                    "urgency": "à planifier",
                    "description": "Fuite sous l'évier",
                },
            },
            headers={"X-CSRF-Token": csrf},
            cookies=cookies,
            timeout=30,
        )
        assert r.status_code == 201, r.text
        failed = httpx.post(
            f"{base}/api/v1/auth/login",
            json={"email": "nobody@example.org", "password": "x" * 12},
            timeout=30,
        )
        assert failed.status_code == 401  # argon2 ran (the timing equaliser) under MDWE
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # A clean stop: uvicorn re-raises the SIGTERM it handled once it has shut down.
    assert proc.returncode in (0, -15)


def test_trusted_proxies_must_be_addresses_as_uvicorn_reads_them() -> None:
    from pydantic import ValidationError

    assert Settings(forwarded_allow_ips=" 127.0.0.1, 10.0.0.0/8 ,::1").forwarded_allow_ips == (
        "127.0.0.1,10.0.0.0/8,::1"
    )
    assert Settings(forwarded_allow_ips="*").forwarded_allow_ips == "*"
    for bad in ("nginx.internal", "10.0.0.1/8", "*,10.0.0.1", ""):
        with pytest.raises(ValidationError, match="forwarded_allow_ips"):
            Settings(forwarded_allow_ips=bad)


def test_a_bad_trusted_proxy_setting_is_named_by_the_command_line(settings: Settings) -> None:
    env = {**cli_env(settings), "PERMANENCE_FORWARDED_ALLOW_IPS": "nginx.internal"}
    done = subprocess.run(
        [sys.executable, "-m", "permanence", "serve", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "error: invalid configuration in PERMANENCE_FORWARDED_ALLOW_IPS"


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    """The README's table is the one list a user reads: each field of config.Settings has a
    row. A row may name a family in short (`PERMANENCE_PROVIDER_NAME`, `_ADDRESS`): a short
    name stands for any prefix of the row's first name followed by it."""
    import re

    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    listed: set[str] = set()
    for row in (line for line in table.splitlines() if line.startswith("| `")):
        names = re.findall(r"`(_?[A-Z][A-Z0-9_]*)`", row.split("|")[1])
        first = names[0]
        listed.add(first)
        cuts = [i for i, ch in enumerate(first) if ch == "_"]
        listed.update(first[:i] + short for short in names[1:] for i in cuts)
    missing = [
        f"PERMANENCE_{name.upper()}"
        for name in Settings.model_fields
        if f"PERMANENCE_{name.upper()}" not in listed
    ]
    assert missing == [], f"settings without a row in README.md's Configuration: {missing}"


# -- several worker processes ----------------------------------------------------------------


@pytest.mark.skipif(bool(PG_URL), reason="SQLite only: on PostgreSQL workers are supported")
def test_several_workers_on_sqlite_are_refused_with_the_reason(settings: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "permanence", "serve", "--port", "9", "--workers", "2"],
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "--workers 2" in done.stderr and "PostgreSQL" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not PG_URL, reason="several workers: PostgreSQL")
def test_serve_runs_the_workers_asked_for_on_postgresql(settings: Settings) -> None:
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**cli_env(settings), "PERMANENCE_RETENTION_INTERVAL_MINUTES": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "permanence", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        pids: set[int] = set()
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text()
                    pids = {int(p) for p in children.split()}
                    cmdlines = [Path(f"/proc/{p}/cmdline").read_bytes() for p in pids]
                    if sum(b"spawn_main" in c for c in cmdlines) >= 2:
                        break
            except (httpx.TransportError, FileNotFoundError):
                pass
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        workers = [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(workers) == 2, pids
        # Both answer: requests on one port are spread over the processes.
        for _ in range(20):
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
