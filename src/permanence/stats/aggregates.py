"""The account figures' hourly aggregates, kept equal to a scan of the rows they sum (ADR 0032).

``account_hourly_stats`` holds, per account and UTC hour, every sum the account figures are
made of; ``account_answer_seconds`` the answered calls per Paris day and whole second of answer
time (the 90th percentile). A transaction that writes a call, a message, an appointment or a
recording marks the hours (and days) it touched; they are **recomputed from the rows** — the
same SQL expressions as the scan in ``stats.account`` — at the transaction's commit, after its
last flush and the audit head (``db.at_commit``: the head serialises the recounts; the lock
order of ADR 0035), or before the figures are read in it. Recomputing instead of adding deltas
keeps the aggregates right whatever changed: a late callback correcting an outcome, an
acknowledgement, an erasure or a retention sweep deleting rows (their hours lose them, as the
scan would), a cascade from a deleted call or caller. Only a new message, appointment or
recording adds itself to its hour.

What is watched: ORM flushes (new, changed in a counted column, deleted objects) and the
ORM-enabled Core statements run through a session (``session.execute(insert|update|delete(M))``)
on the four models, deletions of callers (their rows go by cascade), and the new rows a path
wrote with Core on the session's connection and noted (``db.note_core_insert``: a new message,
ADR 0040). Any other statement run directly on a Connection, or raw SQL, is not seen:
``rebuild`` recomputes an account (or all) from its rows (``permanence stats rebuild``; the
migration runs it once).

This module watches the session (its event listeners are at the end, in the same order) and
writes at commit (``apply_pending``); what each part sums and the recounting itself are in
``stats.recount`` (ADR 0037; ``rebuild`` is re-exported here for the command, the migrations
and the bench). It is imported by name whenever a ``Database`` is made
(``db.SESSION_EVENT_MODULES``), so every process that writes has its listeners.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable, Mapping
from typing import Any, cast

from sqlalchemy import Connection, Table, event, select, text, true
from sqlalchemy.orm import ORMExecuteState, Session, attributes

from permanence.calls.model import Call
from permanence.db import COMMIT_STATS, at_commit, take_core_inserts
from permanence.messages.model import Appointment, Message
from permanence.recordings.model import Recording
from permanence.render import PARIS
from permanence.stats import sql
from permanence.stats.recount import (
    HOURLY,
    PART_COLUMNS,
    SECONDS_PART,
    dialect_insert,
    hour_of,
    recompute,
)
from permanence.stats.recount import rebuild as rebuild
from permanence.subjects.model import Caller

# The model of each part, the column that places a row in an hour, and the columns whose
# change changes a figure (a change elsewhere — a recording state, an operator — is ignored).
WATCHED: dict[type[Any], tuple[str, str, frozenset[str]]] = {
    Call: (
        "calls",
        "started_at",
        frozenset(
            {"account_id", "started_at", "outcome", "answered_at", "ended_at", "talk_s", "routing"}
        ),
    ),
    Message: ("messages", "created_at", frozenset({"account_id", "created_at", "acknowledged_at"})),
    Appointment: ("appointments", "created_at", frozenset({"account_id", "created_at", "status"})),
    Recording: ("recordings", "created_at", frozenset({"account_id", "created_at", "duration_s"})),
}
_BY_TABLE = {cast(Table, m.__table__).name: m for m in WATCHED}
_CALLER_TABLE = cast(Table, Caller.__table__).name
_PENDING = "_stats_pending"

# account -> UTC hour -> the parts to recompute
Touched = dict[uuid.UUID, dict[dt.datetime, set[str]]]
# account -> UTC hour -> column -> what new rows add to it
Added = dict[uuid.UUID, dict[dt.datetime, dict[str, int]]]
_ADDED = "_stats_added"


# -- watching the session ------------------------------------------------------------------------


def _pending(session: Session) -> Touched:
    got: Touched | None = session.info.get(_PENDING)
    if got is None:
        got = session.info[_PENDING] = {}
    return got


# A change of these on a call moves it in (or out of) the answer seconds of its day.
_ANSWER_FACTS = frozenset({"account_id", "started_at", "answered_at", "outcome"})


def _mark(touched: Touched, account_id: Any, at: Any, part: str, *, seconds: bool = True) -> None:
    """Mark the hour of ``at`` for recounting ``part``; for calls, also their day's answer
    seconds unless ``seconds`` is False (a change that cannot move an answer time)."""
    if account_id is None or not isinstance(at, dt.datetime):
        return
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    parts = touched.setdefault(account_id, {}).setdefault(hour_of(at), set())
    parts.add(part)
    if part == "calls" and seconds:
        parts.add(SECONDS_PART)


def apply_pending(session: Session, *_args: Any, **_kw: Any) -> None:
    """Write what this transaction changed in the aggregates (and forget it): the new rows'
    additions, then the hours to recount. Called at commit (after the last flush) and before
    the figures are read: the hourly rows are locked after the rows the transaction wrote and
    the audit head (ADR 0035), in one order (account, hour) — no lock cycle with another
    transaction doing the same, and no two recounts of an hour at once."""
    _note_core_inserts(session)
    touched: Touched = session.info.pop(_PENDING, None) or {}
    added: Added = session.info.pop(_ADDED, None) or {}
    if not touched and not added:
        return
    pg = sql.dialect_of(session) == "postgresql"
    ctx = session.info.get("ctx")
    current = getattr(ctx, "account_id", None)
    for account_id in sorted(set(touched) | set(added), key=str):
        hours = touched.get(account_id, {})
        switch = pg and account_id != current
        if switch:
            # The rows were written for this account (inside acting_for, say) and the
            # transaction has moved on: recount them under its row-level security, then
            # put the setting back.
            _set_account(session, account_id)
        try:
            if account_id in added:
                _add(session, account_id, hours, added[account_id])
            recompute(session, account_id, hours)
        finally:
            if switch:
                _set_account(session, current)


def _set_account(session: Session, account_id: uuid.UUID | None) -> None:
    session.connection().execute(
        text("SELECT set_config('app.account_id', :a, true)"),
        {"a": str(account_id) if account_id else ""},
    )


def _rows_of(conn: Connection, model: type[Any], where: Any) -> list[tuple[Any, Any]]:
    _part, ts_name, _cols = WATCHED[model]
    return [
        (a, t)
        for a, t in conn.execute(select(model.account_id, getattr(model, ts_name)).where(where))
    ]


def _mark_cascade_of_calls(session: Session, call_ids: Any) -> None:
    """Deleting calls takes their recordings along (ON DELETE CASCADE)."""
    touched = _pending(session)
    for a, t in _rows_of(session.connection(), Recording, Recording.call_id.in_(call_ids)):
        _mark(touched, a, t, "recordings")


def _mark_cascade_of_callers(session: Session, caller_ids: Any) -> None:
    """Deleting callers takes all their rows along (ON DELETE CASCADE)."""
    touched = _pending(session)
    conn = session.connection()
    for model, (part, _ts, _cols) in WATCHED.items():
        for a, t in _rows_of(conn, model, model.caller_id.in_(caller_ids)):
            _mark(touched, a, t, part)


def _before_flush(session: Session, *_args: Any) -> None:
    """What a flush will delete, while it is still there to be read (the cascades)."""
    calls = [o.id for o in session.deleted if isinstance(o, Call)]
    if calls:
        _mark_cascade_of_calls(session, calls)
    callers = [o.id for o in session.deleted if isinstance(o, Caller)]
    if callers:
        _mark_cascade_of_callers(session, callers)


def _after_flush(session: Session, *_args: Any) -> None:
    """Note the hours of the rows this flush wrote (recounted or added to at commit)."""
    touched = _pending(session)
    # A new message, appointment or recording adds itself to its hour: no need to recount
    # the hour's rows, unless something else in the hour is recounted anyway (below).
    added: Added = session.info.setdefault(_ADDED, {})
    for obj in session.new:
        if type(obj) in WATCHED:
            _count_new(touched, added, type(obj), functools.partial(getattr, obj))
    for obj in session.deleted:
        spec = WATCHED.get(type(obj))
        if spec is not None:
            _mark(touched, obj.account_id, getattr(obj, spec[1]), spec[0])
    for obj in session.dirty:
        spec = WATCHED.get(type(obj))
        if spec is None:
            continue
        part, ts_name, watched = spec
        state = attributes.instance_state(obj)
        changed = {name for name in watched if state.attrs[name].history.has_changes()}
        if not changed:
            continue
        seconds = bool(changed & _ANSWER_FACTS)
        _mark(touched, obj.account_id, getattr(obj, ts_name), part, seconds=seconds)
        # the hour (or account) it was in before, if that changed
        acc_hist = state.attrs["account_id"].history
        ts_hist = state.attrs[ts_name].history
        old_acc = acc_hist.deleted[0] if acc_hist.deleted else obj.account_id
        old_ts = ts_hist.deleted[0] if ts_hist.deleted else getattr(obj, ts_name)
        _mark(touched, old_acc, old_ts, part, seconds=seconds)
    # written at commit (apply_pending), not now: see there


def _note_core_inserts(session: Session) -> None:
    """New rows a path wrote with a Core INSERT (``db.note_core_insert``), which the flush
    events did not see: added to their hours as a new object would be."""
    noted = take_core_inserts(session)
    if not noted:
        return
    added: Added = session.info.setdefault(_ADDED, {})
    for table, row in noted:
        model = _BY_TABLE.get(table)
        if model is not None:
            _count_new(_pending(session), added, model, row.get)


def _count_new(
    touched: Touched, added: Added, model: type[Any], value: Callable[[str], Any]
) -> None:
    """One new row of a watched model (``value(column name)``): a message, appointment or
    recording adds itself to its hour; anything else marks its hour to be recounted."""
    ts_name = WATCHED[model][1]
    at = value(ts_name)
    delta = _delta_for(model, value)
    if delta is None or not isinstance(at, dt.datetime):
        # a call just opened has no answer time yet (one answered already has)
        answered = issubclass(model, Call) and value("answered_at") is not None
        _mark(touched, value("account_id"), at, WATCHED[model][0], seconds=answered)
        return
    hour = added.setdefault(value("account_id"), {}).setdefault(hour_of(at), {})
    for c, v in delta.items():
        hour[c] = hour.get(c, 0) + v


def _delta_for(model: type[Any], value: Callable[[str], Any]) -> dict[str, int] | None:
    """What one new row adds to its hour's columns, from its model and its values
    (``value(column name)``); None: a call, recounted instead."""
    if issubclass(model, Message):
        return {"messages": 1, "messages_unacknowledged": int(value("acknowledged_at") is None)}
    if issubclass(model, Appointment):
        return {"appointments": 1, "appointments_cancelled": int(value("status") == "cancelled")}
    if issubclass(model, Recording):
        return {"recordings": 1, "recording_s": int(value("duration_s") or 0)}
    return None


_ADDS: dict[tuple[str, frozenset[str]], Any] = {}


def _add(
    session: Session,
    account_id: uuid.UUID,
    hours: Mapping[dt.datetime, set[str]],
    added: Mapping[dt.datetime, dict[str, int]],
) -> None:
    """Add new rows' counts to their hours (INSERT … ON CONFLICT DO UPDATE SET c = c + …),
    leaving out the hours whose part is recounted from the rows anyway."""
    by_columns: dict[frozenset[str], list[dict[str, Any]]] = {}
    for hour in sorted(added):
        delta = added[hour]
        parts = hours.get(hour, set())
        if any(c in PART_COLUMNS.get(p, ()) for p in parts for c in delta):
            continue
        local = hour.astimezone(PARIS)
        row = {"account_id": account_id, "hour": hour, "day": local.date()}
        row |= {"hour_of_day": local.hour, **delta}
        by_columns.setdefault(frozenset(delta), []).append(row)
    dialect = sql.dialect_of(session)
    conn = session.connection()
    for columns, rows in by_columns.items():
        stmt = _ADDS.get((dialect, columns))
        if stmt is None:
            ins = dialect_insert(dialect)
            stmt = ins.on_conflict_do_update(
                index_elements=[HOURLY.c.account_id, HOURLY.c.hour],
                set_={c: HOURLY.c[c] + ins.excluded[c] for c in sorted(columns)},
            )
            _ADDS[(dialect, columns)] = stmt
        conn.execute(stmt, rows)


def _statement_rows(state: ORMExecuteState, model: type[Any]) -> list[Mapping[str, Any]]:
    params = state.parameters
    if isinstance(params, list):
        return [p for p in params if isinstance(p, Mapping)]
    rows: list[Mapping[str, Any]] = []
    if isinstance(params, Mapping) and params:
        rows.append(params)
    values = getattr(state.statement, "_values", None)
    if values:
        rows.append({getattr(k, "key", str(k)): getattr(v, "value", v) for k, v in values.items()})
    multi = getattr(state.statement, "_multi_values", None)
    for group in multi or ():
        for values_row in group:
            if isinstance(values_row, Mapping):
                rows.append(
                    {
                        getattr(k, "key", str(k)): getattr(v, "value", v)
                        for k, v in values_row.items()
                    }
                )
    return rows


def _on_statement(state: ORMExecuteState) -> None:
    """ORM-enabled INSERT/UPDATE/DELETE on a watched model: mark the hours it touches (read
    before a DELETE or UPDATE runs; recomputed at commit, or when the figures are read)."""
    if state.is_select or not (state.is_insert or state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    name = getattr(table, "name", None)
    if name == _CALLER_TABLE and state.is_delete:
        where = state.statement.whereclause  # type: ignore[attr-defined]
        ids = select(Caller.id) if where is None else select(Caller.id).where(where)
        _mark_cascade_of_callers(state.session, ids)
        return
    model = _BY_TABLE.get(name or "")
    if model is None:
        return
    part, ts_name, watched = WATCHED[model]
    touched = _pending(state.session)
    if state.is_insert:
        now = dt.datetime.now(dt.UTC)
        for row in _statement_rows(state, model):
            _mark(touched, row.get("account_id"), row.get(ts_name, now), part)
        return
    if state.is_update:
        values = getattr(state.statement, "_values", None) or {}
        keys = {getattr(k, "key", str(k)) for k in values}
        if keys and not keys & watched:
            return  # a column no figure reads
    where = state.statement.whereclause  # type: ignore[attr-defined]
    conn = state.session.connection()
    for a, t in _rows_of(conn, model, where if where is not None else true()):
        _mark(touched, a, t, part)
    if state.is_delete and model is Call:
        ids = select(Call.id) if where is None else select(Call.id).where(where)
        _mark_cascade_of_calls(state.session, ids)
    if state.is_update:
        # an UPDATE that moves rows to another hour or account: mark where they land too
        # (after it ran: read at the next flush or at commit, recounted at commit)
        state.session.info.setdefault("_stats_after_update", []).append((model, where))


def _after_updates(session: Session, *_args: Any) -> None:
    moved = session.info.pop("_stats_after_update", None)
    if not moved:
        return
    touched = _pending(session)
    conn = session.connection()
    for model, where in moved:
        part = WATCHED[model][0]
        for a, t in _rows_of(conn, model, where if where is not None else true()):
            _mark(touched, a, t, part)


def _before_commit(session: Session) -> None:
    session.flush()  # the last changes first: the aggregates are the transaction's last writes
    _after_updates(session)
    apply_pending(session)


def _before_flush_all(session: Session, *args: Any) -> None:
    _after_updates(session)
    _before_flush(session, *args)


def _forget(session: Session, *_args: Any) -> None:
    take_core_inserts(session)
    session.info.pop(_PENDING, None)
    session.info.pop(_ADDED, None)
    session.info.pop("_stats_after_update", None)


event.listen(Session, "before_flush", _before_flush_all)
event.listen(Session, "after_flush", _after_flush)
at_commit(COMMIT_STATS, _before_commit)
event.listen(Session, "do_orm_execute", _on_statement)
event.listen(Session, "after_soft_rollback", _forget)
