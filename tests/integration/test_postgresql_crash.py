"""PostgreSQL crashes under a writer load (issue 25's fault drill, in small): the test starts
its own PostgreSQL server (Debian's binaries, a data directory of its own, a private port),
migrates it, has operators take messages through the application, kills the server
(``pg_ctl stop -m immediate``: no checkpoint, as in a crash) for a few seconds and starts it
again. Every answer meanwhile is a 201 or a 503 in the product's JSON shape with
``Retry-After`` - no 500, no dropped connection -, every acknowledged message is in the
database after the crash recovery, and the same application serves again without a restart.

Runs in the PostgreSQL pass (it needs the server's binaries, which that pass has)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, pool, select, text

from permanence import schema
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.messages.model import Message
from permanence.runtime import Runtime
from permanence.web.app import create_app
from tests.conftest import PG_URL, TEST_MASTER_KEY, free_port
from tests.factories import make_account
from tests.web.conftest import PASSWORD, make_person

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(
        not PG_URL, reason="the PostgreSQL pass only (PERMANENCE_TEST_DATABASE_URL)"
    ),
]

PLUMBER_DID = "+33240000001"
WRITERS = 4
OUTAGE_S = 3.0
VALUES = {
    "last_name": "Martin",
    "phone": "01 99 00 12 34",
    "address": "3 rue des Lilas, 44000 Nantes",
    "urgency": "à planifier",
    "description": "Fuite sous l'évier",
}


def _server_binaries() -> Path:
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        bin_dir = Path(found)
        if (bin_dir / "initdb").exists() and (bin_dir / "pg_ctl").exists():
            return bin_dir
    pytest.skip(
        "PostgreSQL's server binaries (initdb, pg_ctl) are not in /usr/lib/postgresql/*/bin"
    )


@dataclass
class Server:
    bin_dir: Path
    data: Path
    port: int
    user: str | None  # run as this user (initdb refuses root), or as ourselves

    def run(self, *args: str, timeout: float = 60) -> None:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.data} -c max_connections=40"
        )
        self.run(
            "pg_ctl",
            "start",
            "-w",
            "-D",
            str(self.data / "db"),
            "-o",
            options,
            "-l",
            str(self.data / "server.log"),
        )

    def crash(self) -> None:
        self.run("pg_ctl", "stop", "-m", "immediate", "-D", str(self.data / "db"))

    def url(self, role: str, database: str = "permanence") -> str:
        return f"postgresql+psycopg://{role}@127.0.0.1:{self.port}/{database}"


@pytest.fixture
def server() -> Iterator[Server]:
    bin_dir = _server_binaries()
    user = None
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("initdb refuses root, and runuser is not there to run it as 'postgres'")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("initdb refuses root, and there is no 'postgres' user to run it as")
        user = "postgres"
    # Not under pytest's tmp_path: its parents are private to root, the server's user must
    # reach its data directory.
    data = Path(tempfile.mkdtemp(prefix="permanence-pg-"))
    if user:
        shutil.chown(data, user)
    srv = Server(bin_dir, data, free_port(), user)
    try:
        srv.run(
            "initdb",
            "-D",
            str(data / "db"),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        srv.start()
        admin = create_engine(
            srv.url("postgres", "postgres"), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text("CREATE ROLE permanence_owner LOGIN"))
            conn.execute(text("CREATE ROLE permanence_app LOGIN NOSUPERUSER NOBYPASSRLS"))
            conn.execute(text("CREATE DATABASE permanence OWNER permanence_owner"))
        admin.dispose()
        yield srv
    finally:
        subprocess.run(
            [
                *(["runuser", "-u", user, "--"] if user else []),
                str(bin_dir / "pg_ctl"),
                "stop",
                "-m",
                "immediate",
                "-D",
                str(data / "db"),
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(data, ignore_errors=True)


@dataclass
class Load:
    acknowledged: list[uuid.UUID] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    refusals: list[tuple[int, str, str | None]] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # an exception: no answer at all
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self, status: int, body: dict[str, object] | None, retry: str | None) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status != 201:
                code = str((body or {}).get("error"))
                self.refusals.append((status, code, retry))


def test_postgresql_crashing_under_writers_loses_nothing_and_answers_503(
    server: Server, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=server.url("permanence_app"),
        database_migration_url=server.url("permanence_owner"),
        database_app_role="permanence_app",
        master_key=TEST_MASTER_KEY,
    )
    settings.data_dir.mkdir()
    schema.upgrade(settings.effective_migration_url, settings.database_app_role)
    rt = Runtime.from_settings(settings)
    try:
        account = make_account(rt, "plomberie-durand")
        operator = make_person(rt, Role.OPERATOR, "op@permanence.example")
        app = create_app(rt)
        signed = TestClient(app)
        r = signed.post(
            "/api/v1/auth/login",
            json={"email": operator.email, "password": PASSWORD, "totp": operator.code()},
        )
        assert r.status_code == 200, r.text
        csrf = r.json()["csrf_token"]
        load, stop = Load(), threading.Event()

        def writer() -> None:
            client = TestClient(app)
            client.cookies = signed.cookies
            client.headers["X-CSRF-Token"] = csrf
            while not stop.is_set():
                try:
                    call = client.post(
                        "/api/v1/calls",
                        json={"dialled": PLUMBER_DID, "caller_number": "0199001234"},
                    )
                    if call.status_code != 201:
                        load.answered(
                            call.status_code, call.json(), call.headers.get("Retry-After")
                        )
                        time.sleep(0.05)
                        continue
                    url = f"/api/v1/accounts/{account.id}/calls/{call.json()['id']}/messages"
                    msg = client.post(url, json={"purpose": "intervention", "values": VALUES})
                except Exception as exc:  # the connection dropped, or a bug surfaced
                    with load.lock:
                        load.broken.append(exc.__class__.__name__)
                    time.sleep(0.05)
                    continue
                load.answered(msg.status_code, msg.json(), msg.headers.get("Retry-After"))
                if msg.status_code == 201:
                    with load.lock:
                        load.acknowledged.append(uuid.UUID(msg.json()["id"]))
                else:
                    time.sleep(0.05)

        threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.5)
            before_crash = len(load.acknowledged)
            server.crash()
            time.sleep(OUTAGE_S)
            during = dict(load.statuses)
            server.start()  # crash recovery replays the WAL
            time.sleep(2.0)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        assert before_crash > 0, "the load took no message before the crash"
        assert not load.broken, f"requests without an answer: {load.broken[:5]}"
        assert set(load.statuses) <= {201, 503}, load.statuses
        assert during.get(503, 0) > 0, "the outage was not seen"
        for status, code, retry in load.refusals:
            assert (status, code) in {(503, "database_unavailable"), (503, "database_busy")}
            assert retry is not None and int(retry) > 0
        # The same application serves again, without a restart.
        assert len(load.acknowledged) > before_crash, "no message was taken after the restart"
        assert TestClient(app).get("/readyz").status_code == 200
        # Every acknowledged message survived the crash.
        with rt.db.session(AccessContext.system("test", account.id), readonly=True) as s:
            stored = set(s.scalars(select(Message.id)))
        assert set(load.acknowledged) <= stored
        assert time.monotonic() - t0 < 60
    finally:
        rt.close()
