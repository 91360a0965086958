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
from collections.abc import Callable, Iterator
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

    def scans_growing(statement: str, step: str) -> bool:
        m = _SCAN.match(step)
        return bool(m and m.group(1) in GROWING)

    reads = [
        (statement, params)
        for statement, params in statements
        if statement.lstrip().split(None, 1)[0].upper() in ("SELECT", "UPDATE", "DELETE", "WITH")
    ]
    return _flagged_steps(sqlite3.connect(database), reads, scans_growing)


def _flagged_steps(
    con: sqlite3.Connection,
    statements: list[tuple[str, Any]],
    flagged: Callable[[str, str], bool],
) -> dict[str, str]:
    """Each statement (shortened) with the step of its plan that ``flagged(statement, step)``
    picks; ``con`` is closed after."""
    found: dict[str, str] = {}
    try:
        for statement, params in statements:
            for row in con.execute("EXPLAIN QUERY PLAN " + statement, params or ()).fetchall():
                if flagged(statement, str(row[-1])):
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


# Read by caller (or subject) id: a plan step on one of these tables that narrows by the account
# alone walks every row of the account. Legal holds and rights downloads have no index on the
# caller: there are few of them per account (a hold is a deliberate act, a download follows a
# request), so their (account, …) index is the right one.
_BY_SUBJECT = re.compile(r"\b(\w+)\.(caller_id|subject_id) = ")
_SEARCH = re.compile(r"^SEARCH (\w+)(?: AS \w+)? USING (?:COVERING )?INDEX \w+ \((.*)\)$")
_FEW_PER_ACCOUNT = frozenset({"legal_holds", "rights_downloads"})


def _account_indexes_last(database: str) -> sqlite3.Connection:
    """A copy of the database in memory where every index led by the account id was created
    last. Without statistics SQLite breaks a tie between two indexes (one equality each) in
    favour of the one created last, and a migration's batch rebuild creates a table's indexes
    in an order left to chance (the same schema planned either way from one run to the next):
    this is the worst case, every tie going to the account's index."""
    con = sqlite3.connect(":memory:")
    with sqlite3.connect(database) as src:
        src.backup(con)
    led_by_account = [
        (name, sql)
        for name, sql in con.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
        if re.search(r"\(\s*account_id\b", sql)
    ]
    for name, sql in led_by_account:
        con.execute(f'DROP INDEX "{name}"')
        con.execute(sql)
    return con


def _account_walks(database: str, statements: list[tuple[str, Any]]) -> dict[str, str]:
    """Each statement filtering a table by caller or subject id whose plan reads that table by
    an index narrowed by the account alone, with that plan step (in the worst case above)."""

    def tables(statement: str) -> set[str]:
        return {m.group(1) for m in _BY_SUBJECT.finditer(statement)} - _FEW_PER_ACCOUNT

    def walks_account(statement: str, step: str) -> bool:
        m = _SEARCH.match(step)
        on = m.group(2).split(" AND ") if m and m.group(1) in tables(statement) else []
        narrowed_by_subject = {"caller_id=?", "subject_id=?"} & set(on)
        return bool(on) and on[0] == "account_id=?" and not narrowed_by_subject

    by_subject = [(statement, params) for statement, params in statements if tables(statement)]
    return _flagged_steps(_account_indexes_last(database), by_subject, walks_account)


def _rights_paths(world: World) -> set[str]:
    """A subject's rights carried out one after the other (Art. 15, 16, 18, 19, 21, 17), their
    consents listed, their history opened on the desk: what reads by caller id."""
    from permanence.accounts.service import mandate_by_id
    from permanence.calls.model import Call
    from permanence.web.pages import console_desk
    from tests.factories import caller_with_records, ctx_for

    made = caller_with_records(
        world.rt,
        world.plumber.id,
        first="Zoé",
        last="Plan",
        phone="0671234589",
        email="zoe@exemple.fr",
    )
    client = world.login(world.client_plumber)
    a = world.plumber.id
    base = f"/api/v1/accounts/{a}/rights/requests"
    assert client.get(f"/api/v1/accounts/{a}/callers/{made.caller_id}/consents").status_code == 200
    with world.rt.db.session(ctx_for(a)) as s:
        call = s.get(Call, made.call_id)
        assert call is not None
        console_desk.caller_history(s, call, mandate_by_id(s, call.mandate_id)[1], "follow_up")

    def request(kind: str, **more: Any) -> str:
        body = {"kind": kind, "requester": {"phone": "0671234589"}, "verified_by_controller": True}
        r = client.post(base, json={**body, **more})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    access = request("access")
    assert client.get(f"{base}/{access}/recipients").status_code == 200
    done = set()
    for kind, more in (
        ("rectification", {"changes": {"identity": {"first_name": "Zoë"}}}),
        ("restriction", {}),
        ("objection", {"scope": "recording"}),
        ("objection", {"scope": "intervention"}),
        ("erasure", {}),
    ):
        r = client.post(f"{base}/{request(kind, **more)}/execute")
        assert r.status_code == 200, (kind, r.text)
        done.add(kind)
    return done


def test_reads_by_caller_use_the_callers_index(world: World, smtp: Any) -> None:
    """Erasure, rectification, restriction, objection, recipients (Art. 19), consents and the
    desk's history read the subject's rows by the caller's index, not the account's."""
    if world.rt.db.is_postgres:
        pytest.skip("plans are read from SQLite's planner (see the module's docstring)")
    with _captured(world) as statements:
        done = _rights_paths(world)
    assert done == {"rectification", "restriction", "objection", "erasure"}
    by_subject = [st for st in statements if _BY_SUBJECT.search(st[0])]
    assert len(by_subject) > 20, len(by_subject)  # the paths above really read by caller
    database = world.rt.db.engine.url.database
    assert database
    walks = _account_walks(database, statements)
    assert not walks, "\n".join(f"{plan}: {sql}" for sql, plan in walks.items())


def test_the_plan_check_sees_an_account_walk(world: World) -> None:
    """The check itself: messages of a caller filtered by the account too are caught."""
    if world.rt.db.is_postgres:
        pytest.skip("plans are read from SQLite's planner")
    database = world.rt.db.engine.url.database
    assert database
    sql = (
        "SELECT messages.id FROM messages WHERE messages.account_id = ? AND messages.caller_id = ?"
    )
    walks = _account_walks(database, [(sql, ("a", "c"))])
    assert list(walks.values()) == [
        "SEARCH messages USING INDEX ix_messages_account_created_ack (account_id=?)"
    ]
