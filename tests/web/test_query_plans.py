"""Lookups and sweeps do not scan a growing table (the guide: "lookups by identifier must not
scan; sweeps must batch").

Every statement the hot paths send — a call arriving, a message taken, the client's list, the
background loop's passes (deliveries, escalations, stale calls, recording downloads, queue
dispatch, call-backs) and the retention sweep — is captured, then asked of SQLite's planner
(``EXPLAIN QUERY PLAN``, with its own parameters, on a database without statistics, so the
planner assumes big tables). A plan step ``SCAN <table>`` without an index, on a table that
grows with calls, is a failure naming the statement. SQLite only: PostgreSQL's planner rightly
scans small tables, so its plans say nothing about big ones."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from permanence.context import AccessContext
from permanence.db import utcnow
from permanence.delivery.worker import run_due
from permanence.filestore import store_from_settings
from permanence.recordings.downloads import run_due as run_downloads
from permanence.retention.service import sweep_exclusive
from permanence.routing import callbacks
from permanence.routing.dispatch import tick as queue_tick
from permanence.telephony.stale import resolve_stale
from tests.web.conftest import World
from tests.web.pages_helpers import page_login
from tests.web.test_pages import message_for_plumber, ring
from tests.web.test_rights_pages import _request

# Tables that grow with the calls taken (one or more rows per call, message, caller, event).
GROWING = frozenset(
    {
        "calls",
        "callers",
        "messages",
        "appointments",
        "recordings",
        "recording_downloads",
        "voicemails",
        "consents",
        "deliveries",
        "delivery_events",
        "escalations",
        "audit_log",
        "call_queue",
        "subject_keys",
        "rights_requests",
        "caller_codes",
        "account_hourly_stats",
        "account_answer_seconds",
        "call_evaluations",
    }
)
# "SCAN t" or "SCAN t AS alias" — a whole table read row by row. "SCAN t USING [COVERING]
# INDEX i" walks an index (an ORDER BY on it, or a covering read) and is not caught here.
_SCAN = re.compile(r"^SCAN (\w+)(?: AS \w+)?$")


@contextmanager
def _captured(world: World) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(
        _conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool
    ) -> None:
        if not many:
            seen.append((statement, params))

    engine = world.rt.db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _full_scans(database: str, statements: list[tuple[str, Any]]) -> dict[str, str]:
    """Each statement whose plan reads a growing table whole, with that plan step."""
    found: dict[str, str] = {}
    con = sqlite3.connect(database)
    try:
        for statement, params in statements:
            head = statement.lstrip().split(None, 1)[0].upper()
            if head not in ("SELECT", "UPDATE", "DELETE", "WITH"):
                continue
            rows = con.execute("EXPLAIN QUERY PLAN " + statement, params or ()).fetchall()
            for row in rows:
                m = _SCAN.match(str(row[-1]))
                if m and m.group(1) in GROWING:
                    found[" ".join(statement.split())[:300]] = str(row[-1])
    finally:
        con.close()
    return found


def _hot_paths(world: World) -> None:
    """What an answering service does all day, on a world with a few rows in each table."""
    for _ in range(3):
        ring(world)
        message_for_plumber(world)
    client, _ = page_login(world, world.client_plumber)
    assert client.get("/portail/messages").status_code == 200
    assert client.get(f"/portail/messages/{message_for_plumber(world)}").status_code == 200
    _request(world, world.plumber.id, "access")  # a rights request: the caller is looked up
    operator, _ = page_login(world, world.operator)
    assert operator.get("/console").status_code == 200
    rt = world.rt
    run_due(rt)
    resolve_stale(rt)
    run_downloads(rt)
    queue_tick(rt)
    with rt.db.session(AccessContext.system("test:query plans"), readonly=True) as s:
        callbacks.pending(s, world.operator.id)
    sweep_exclusive(rt.db, store_from_settings(rt.settings), now=utcnow() + dt.timedelta(days=800))


def test_no_hot_path_reads_a_growing_table_whole(world: World) -> None:
    if world.rt.db.is_postgres:
        pytest.skip("plans are read from SQLite's planner (see the module's docstring)")
    with _captured(world) as statements:
        _hot_paths(world)
    assert len(statements) > 100, len(statements)  # the paths above really ran
    database = world.rt.db.engine.url.database
    assert database
    scans = _full_scans(database, statements)
    assert not scans, "\n".join(f"{plan}: {sql}" for sql, plan in scans.items())


def test_the_plan_check_sees_a_full_scan(world: World) -> None:
    """The check itself: a lookup on an unindexed column of a growing table is caught."""
    if world.rt.db.is_postgres:
        pytest.skip("plans are read from SQLite's planner")
    database = world.rt.db.engine.url.database
    assert database
    scans = _full_scans(database, [("SELECT call_id FROM call_queue WHERE attempts = ?", (2,))])
    assert list(scans.values()) == ["SCAN call_queue"]
