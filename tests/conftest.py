"""Test fixtures. The database is SQLite unless PERMANENCE_TEST_DATABASE_URL names a
PostgreSQL database (an application role that does not own the tables, so that row-level
security applies to every test); PERMANENCE_TEST_DATABASE_MIGRATION_URL then names the owner.

Between tests the PostgreSQL tables are emptied. With PERMANENCE_TEST_DATABASE_RESET_URL naming
a superuser on the same database, that is a DELETE of every table with triggers and foreign
keys set aside (``session_replication_role = replica``, which only a superuser may set);
otherwise the owner TRUNCATEs them all. TRUNCATE builds every index afresh and each build syncs
its file: on a disk where a sync costs a millisecond, 0.7–0.85 s per test, against a few
milliseconds for the DELETEs.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text

from permanence import schema
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.runtime import Runtime
from tests.provider_server import ProviderServer

PG_URL = os.environ.get("PERMANENCE_TEST_DATABASE_URL")
PG_OWNER_URL = os.environ.get("PERMANENCE_TEST_DATABASE_MIGRATION_URL", PG_URL)
PG_APP_ROLE = os.environ.get("PERMANENCE_TEST_DATABASE_APP_ROLE")
PG_RESET_URL = os.environ.get("PERMANENCE_TEST_DATABASE_RESET_URL")
TEST_MASTER_KEY = base64.b64encode(bytes(range(32))).decode()


def pytest_report_header() -> str:
    return f"permanence database: {'PostgreSQL' if PG_URL else 'SQLite'}"


@pytest.fixture(scope="session")
def _schema_template(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """Migrate once per run: a SQLite file to copy, or the PostgreSQL schema to truncate."""
    if PG_URL:
        assert PG_OWNER_URL
        engine = create_engine(PG_OWNER_URL, poolclass=pool.NullPool)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        schema.upgrade(PG_OWNER_URL, PG_APP_ROLE)
        return None
    path = tmp_path_factory.mktemp("template") / "template.db"
    schema.upgrade(f"sqlite:///{path}")
    return path


_RESETS_BETWEEN_VACUUMS = 100
_resets = 0


def _truncate_pg() -> None:
    """Empty every table (but Alembic's) and put the audit chain's head back at its start."""
    global _resets
    assert PG_OWNER_URL
    engine = create_engine(PG_RESET_URL or PG_OWNER_URL, poolclass=pool.NullPool)
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            if r[0] != "alembic_version"
        ]
        if PG_RESET_URL:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            for table in tables:
                conn.execute(text(f'DELETE FROM public."{table}"'))
        else:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
        conn.execute(
            text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64}
        )
    _resets += 1
    if PG_RESET_URL and _resets % _RESETS_BETWEEN_VACUUMS == 0:
        # The deleted rows stay as dead tuples until a vacuum; this machine's server runs
        # without autovacuum, so the suite clears them itself.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM"))
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, _schema_template: Path | None) -> Settings:
    data = tmp_path / "data"
    data.mkdir()
    if PG_URL:
        _truncate_pg()
        url = PG_URL
    else:
        assert _schema_template is not None
        shutil.copy(_schema_template, data / "permanence.db")
        url = f"sqlite:///{data / 'permanence.db'}"
    return Settings(
        data_dir=data,
        database_url=url,
        database_migration_url=PG_OWNER_URL if PG_URL else None,
        database_app_role=PG_APP_ROLE,
        master_key=TEST_MASTER_KEY,
    )


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime.from_settings(settings)
    yield runtime
    runtime.close()


@pytest.fixture
def admin_ctx() -> AccessContext:
    return AccessContext(role=Role.ADMIN, reason="test")


def cli_env(settings: Settings) -> dict[str, str]:
    """Environment for running the ``permanence`` command against the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERMANENCE_")}
    env["PERMANENCE_DATA_DIR"] = str(settings.data_dir)
    env["PERMANENCE_DATABASE_URL"] = settings.effective_database_url
    env["PERMANENCE_MASTER_KEY"] = TEST_MASTER_KEY
    if settings.database_migration_url:
        env["PERMANENCE_DATABASE_MIGRATION_URL"] = settings.database_migration_url
    if settings.database_app_role:
        env["PERMANENCE_DATABASE_APP_ROLE"] = settings.database_app_role
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The ``permanence`` command in a subprocess, as a user runs it; a traceback is a failure
    whatever the exit status (errors are one clear line)."""
    proc = subprocess.run(
        [sys.executable, "-m", "permanence", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpSink:
    """A real SMTP server (aiosmtpd) on a free local port, keeping what it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[tuple[str, list[str], bytes]] = []

        sink = self

        class Handler:
            async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
                sink.messages.append(
                    (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)  # type: ignore[attr-defined]
                )
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> int:
        self.controller.start()
        return self.port

    def stop(self) -> None:
        self.controller.stop()

    def bodies(self) -> list[str]:
        from email import message_from_bytes, policy

        out = []
        for _frm, _to, raw in self.messages:
            msg = message_from_bytes(raw, policy=policy.default)
            out.append(
                str(msg["Subject"])
                + "\n"
                + "\n".join(
                    part.get_content()
                    for part in msg.walk()
                    if part.get_content_maintype() == "text"
                )
            )
        return out


@pytest.fixture
def smtp(settings: Settings) -> Iterator[SmtpSink]:
    """Starts an SMTP server and points the settings at it."""
    sink = SmtpSink()
    port = sink.start()
    settings.smtp_host = "127.0.0.1"
    settings.smtp_port = port
    settings.mail_from = "permanence@permanence.example"
    yield sink
    sink.stop()


@pytest.fixture
def provider(settings: Settings) -> Iterator[ProviderServer]:
    """A local server playing the telephony provider's REST API; settings point at it."""
    from tests.provider_server import ACCOUNT_SID, AUTH_TOKEN

    server = ProviderServer()
    server.start()
    settings.public_base_url = "https://permanence.example"
    settings.twilio_auth_token = AUTH_TOKEN
    settings.twilio_account_sid = ACCOUNT_SID
    settings.twilio_api_base_url = server.base_url
    yield server
    server.stop()


# -- no personal data in logs ------------------------------------------------------------------

# Identifiers the tests seed (factories, demo data, API tests): none may reach a log line.
SEEDED_PERSONAL_DATA = (
    "Camille Martin",
    "Martin Camille",
    "camille.martin@exemple.fr",
    "0199001234",
    "01 99 00 12 34",
    "+33199001234",
    "0639981234",
    "+33639981234",
    "Fuite sous l'évier",
    "diabétique",
    "3 rue des Lilas",
)


class _LogSink(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            text = f"{record.msg} {record.args!r}"
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@pytest.fixture(autouse=True)
def _no_personal_data_in_logs() -> Iterator[None]:
    """Every test runs with all logs captured (DEBUG and up, every logger, unredacted: the
    redacting filter is a second line, not what this checks); a seeded identifier in any
    line fails the test."""
    sink = _LogSink()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(sink)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(sink)
        root.setLevel(old_level)
    leaks = [
        f"{needle!r} in log line {line[:120]!r}"
        for line in sink.lines
        for needle in SEEDED_PERSONAL_DATA
        if needle in line
    ]
    assert leaks == [], "personal data reached the logs"


# A Tuesday, 10:00 in Paris, no holiday: every demo mandate is open (mandates/hours.py).
OFFICE_HOURS = dt.datetime(2026, 12, 8, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _calls_arrive_in_office_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls arrive at a fixed moment in the demo mandates' opening hours, so a test of the
    in-hours flow does not depend on when it runs; tests of the hours pin their own moment
    (``calls.hours.clock``)."""
    from permanence.calls import hours as routing_hours

    monkeypatch.setattr(routing_hours, "clock", lambda: OFFICE_HOURS)
