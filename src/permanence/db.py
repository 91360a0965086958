"""Engine, unit of work and base model.

SQLite (the embedded default) runs in WAL mode with foreign keys on, and every write
transaction starts with ``BEGIN IMMEDIATE`` so that two writers never both read the audit head
and then collide. On PostgreSQL the account of the access context is set per transaction with
``set_config('app.account_id', …, true)`` so that row-level security applies to every
statement (see docs/adr/0003-row-level-security.md).
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from permanence.context import AccessContext

log = logging.getLogger("permanence.db")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone, so we store naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC datetime is required")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def account_owned_tables() -> list[str]:
    """Tables whose rows belong to one client account: isolated by row-level security."""
    return sorted(
        t.name
        for t in Base.metadata.sorted_tables
        if "account_id" in t.c and not t.info.get("shared_registry", False)
    )


def make_engine(url: str, *, sqlite_synchronous: str = "NORMAL", **kw: Any) -> Engine:
    if url.startswith("sqlite"):
        from permanence.fsmodes import private_sqlite

        private_sqlite(url)  # 0600 before SQLite creates it (fsmodes)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            **kw,
        )
        _configure_sqlite(engine, sqlite_synchronous)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kw)


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so we can say BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA synchronous={synchronous}")  # validated in config, not user input
        cur.execute("PRAGMA busy_timeout=30000")
        # Deleted content is overwritten with zeros, not left in free pages: with the
        # checkpoint after an erasure (Database.shred_residue), a destroyed subject key leaves
        # no bytes in the database's files (docs/rights.md).
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("sqlite_readonly"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


# Modules whose session events every unit of work needs: the account figures' aggregates
# follow every write of calls, messages, appointments and recordings (ADR 0032). Imported by
# name when a Database is made, as ``permanence.checks`` imports the checks: this bottom layer
# names them and does not import them, and the features whose rows they watch do not import
# the statistics that read them (ADR 0037).
SESSION_EVENT_MODULES: tuple[str, ...] = ("permanence.stats.aggregates",)


class Database:
    """Holds the engine and opens one unit of work (one transaction) per use case."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "NORMAL", **kw: Any) -> None:
        for module in SESSION_EVENT_MODULES:
            importlib.import_module(module)
        self.url = url
        self.engine = make_engine(url, sqlite_synchronous=sqlite_synchronous, **kw)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readonly_sessions = sessionmaker(
            self.engine.execution_options(sqlite_readonly=True), expire_on_commit=False
        )
        if self.is_postgres:
            event.listen(self._sessions, "after_begin", _set_pg_account)
            event.listen(self._readonly_sessions, "after_begin", _set_pg_account)
        # SQLite has one writer at a time. Queueing this process's writers on a lock, rather
        # than letting them spin in SQLite's busy handler (which sleeps and retries), keeps
        # throughput and tail latency steady under concurrency; other processes still meet
        # the busy timeout.
        self._write_lock = threading.Lock() if not self.is_postgres else None
        # Where erasures are also journalled outside the database: a backup.journal
        # ErasureMirror, handed down by the Runtime (this bottom layer does not import it).
        self.erasure_mirror: object | None = None

    def shred_residue(self, attempts: int = 20) -> bool:
        """SQLite: after an erasure committed, copy the WAL into the main file and truncate it.

        With ``secure_delete`` the deleted rows' pages were rewritten with zeros in the WAL; the
        checkpoint writes them over the main file's old pages, and TRUNCATE empties the WAL,
        whose older frames still held the deleted bytes. A reader holding an old snapshot
        blocks a full checkpoint: retried for about a second, then left to the next erasure's
        (returns False; logged). PostgreSQL cannot zero a dead tuple or a WAL record: there the
        erasure-epoch rotation makes them useless instead (Keyring.rotate_epoch, ADR 0029)."""
        if self.is_postgres:
            return True
        for attempt in range(attempts):
            raw = self.engine.raw_connection()
            try:
                cur = raw.cursor()
                busy, _frames, _done = cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                cur.close()
            finally:
                raw.close()
            if not busy:
                return True
            time.sleep(0.05 * (attempt + 1) / attempts)
        log.warning("the WAL could not be truncated after an erasure: a reader held it")
        return False

    @contextmanager
    def session(self, ctx: AccessContext, *, readonly: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any exception."""
        factory = self._readonly_sessions if readonly else self._sessions
        lock = None if readonly else self._write_lock
        if lock is not None:
            lock.acquire()
        try:
            with factory() as s:
                s.info["ctx"] = ctx
                s.info["erasure_mirror"] = self.erasure_mirror
                with s.begin():
                    yield s
        finally:
            if lock is not None:
                lock.release()

    def dispose(self) -> None:
        self.engine.dispose()


def _set_pg_account(session: Session, _transaction: Any, connection: Connection) -> None:
    ctx: AccessContext | None = session.info.get("ctx")
    account = str(ctx.account_id) if ctx and ctx.account_id else ""
    connection.execute(text("SELECT set_config('app.account_id', :a, true)"), {"a": account})


def switch_account(session: Session, account_id: uuid.UUID) -> AccessContext:
    """Act for ``account_id`` for the rest of this transaction (routing, account creation).

    Updates the session's context and, on PostgreSQL, the row-level-security setting.
    """
    ctx = ctx_of(session).for_account(account_id)
    session.info["ctx"] = ctx
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT set_config('app.account_id', :a, true)"), {"a": str(account_id)}
        )
    return ctx


# -- rows written with a Core INSERT in a unit of work (ADR 0040) ----------------------------
# A hot path may write a new row with a prebuilt Core INSERT on the session's connection rather
# than through the ORM's flush (taking a message: the flush machinery cost more than the
# statement). The ORM's flush events do not see such a row, so the path notes it here, and what
# follows every write of those tables (the statistics' aggregates, ADR 0032) takes the notes at
# its next step. The notes are the transaction's: forgotten with it on a rollback.
CORE_INSERTS = "db.core_inserts"


def note_core_insert(session: Session, table: str, row: dict[str, Any]) -> None:
    """Record that ``row`` was inserted into ``table`` with Core in this transaction."""
    session.info.setdefault(CORE_INSERTS, []).append((table, row))


def take_core_inserts(session: Session) -> list[tuple[str, dict[str, Any]]]:
    """The rows noted since the last call (and forget them)."""
    noted: list[tuple[str, dict[str, Any]]] = session.info.pop(CORE_INSERTS, None) or []
    return noted


# -- the work every transaction does at its commit, in one order (ADR 0035) -----------------
# Each step is a feature's (registered when its module is loaded); they run in this order at
# ``before_commit``, after the transaction's last flush: the audit chain (its head's row lock,
# the entries), then the statistics' hour rows, recounted while the head is held — so two
# transactions never recount the same hour at once, and every transaction takes the head
# before the hours. The head is held for these few statements and the COMMIT only.
COMMIT_AUDIT = 10
COMMIT_STATS = 90
COMMIT_LAST = 99  # what a step left for the audit chain (nothing, normally)
_commit_steps: list[tuple[int, Callable[[Session], None]]] = []


def at_commit(order: int, step: Callable[[Session], None]) -> None:
    """Run ``step(session)`` at every commit, at its place in the order (COMMIT_*)."""
    if any(o == order for o, _ in _commit_steps):
        raise RuntimeError(f"a commit step is already registered at {order}")
    _commit_steps.append((order, step))
    _commit_steps.sort(key=lambda s: s[0])


def run_commit_steps(session: Session, *, before: int | None = None) -> None:
    """The commit steps in order (only those placed before ``before``, when given: what
    must come first when a later step has to run early)."""
    for order, step in tuple(_commit_steps):
        if before is not None and order >= before:
            break
        step(session)


def _at_commit(session: Session) -> None:
    run_commit_steps(session)


event.listen(Session, "before_commit", _at_commit)


def ctx_of(session: Session) -> AccessContext:
    ctx = session.info.get("ctx")
    if not isinstance(ctx, AccessContext):
        raise RuntimeError("session opened without an access context")
    return ctx


@contextmanager
def acting_for(session: Session, account_id: uuid.UUID) -> Iterator[AccessContext]:
    """Act for ``account_id`` inside the block, then return to the previous context.

    For provider-wide use cases (the DPO desk, compliance checks) that visit each account's
    rows in one transaction: on PostgreSQL row-level security follows the switch.
    """
    before = ctx_of(session)
    ctx = switch_account(session, account_id)
    try:
        yield ctx
    finally:
        session.info["ctx"] = before
        if session.get_bind().dialect.name == "postgresql":
            session.execute(
                text("SELECT set_config('app.account_id', :a, true)"),
                {"a": str(before.account_id) if before.account_id else ""},
            )
