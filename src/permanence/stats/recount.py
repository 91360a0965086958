"""Recounting the account figures' hourly aggregates from the rows (ADR 0032): what each part
(calls, messages, appointments, recordings) sums per UTC hour — the same SQL expressions as
the scan in ``stats.account`` — and writing them: ``recompute`` (the hours a transaction
touched), ``rebuild`` (an account, or all, from its rows). Split from ``stats.aggregates``,
which watches the session and calls these at commit (ADR 0037).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Date,
    Integer,
    Table,
    Uuid,
    and_,
    bindparam,
    delete,
    func,
    literal,
    select,
)
from sqlalchemy.orm import Session

from permanence.calls.model import Call
from permanence.messages.model import Appointment, Message
from permanence.recordings.model import Recording
from permanence.render import PARIS
from permanence.stats import sql
from permanence.stats.model import AccountAnswerSeconds, AccountHourlyStats

HOURLY = cast(Table, AccountHourlyStats.__table__)
SECONDS = cast(Table, AccountAnswerSeconds.__table__)
HOUR = dt.timedelta(hours=1)
UPSERT_ROWS = 500
# More days than this in one recompute: their answer seconds in one grouped pass.
DAY_BY_DAY = 4

CALL_COLUMNS = (
    "received",
    "answered",
    "abandoned",
    "voicemail",
    "failed",
    "expired",
    "transferred",
    "answer_s",
    "talk_s",
    "talked",
    "waited_s",
    "waited",
    "answer_le10",
    "answer_le20",
    "answer_le30",
    "answer_le60",
    "answer_gt60",
    "abandon_le10",
    "abandon_le30",
    "abandon_le60",
    "abandon_gt60",
    "after_hours_voicemail",
    "after_hours_forward",
    "after_hours_answer",
    "outbound",
    "callback_request",
)
PART_COLUMNS: dict[str, tuple[str, ...]] = {
    "calls": CALL_COLUMNS,
    "messages": ("messages", "messages_unacknowledged"),
    "appointments": ("appointments", "appointments_cancelled"),
    "recordings": ("recordings", "recording_s"),
}
# Not a part of the hourly row: the day's answered calls per second (account_answer_seconds).
SECONDS_PART = "seconds"


def hour_of(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def paris_day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    lower = dt.datetime.combine(day, dt.time(), PARIS).astimezone(dt.UTC)
    upper = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), PARIS).astimezone(dt.UTC)
    return lower, upper


# -- what each part sums (the scan in stats.account uses the same expressions) ---------------


def call_columns(bind: Session | Connection) -> list[ColumnElement[Any]]:
    """The figures of calls, in CALL_COLUMNS order, as aggregates over ``calls`` rows."""
    # Imported here: this module is loaded with the models (the session events of
    # stats.aggregates), and the routing decisions bring the mandate schema along.
    from permanence.calls.hours import AFTER_HOURS as AFTER_HOURS_ROUTINGS
    from permanence.calls.hours import OUTBOUND

    ans = sql.answer_seconds(bind)
    talk = sql.talk_seconds(bind)
    waited = sql.seconds_between(bind, Call.ended_at, Call.started_at)
    talked = and_(sql.ANSWERED, talk.is_not(None))
    gave_up = and_(sql.ABANDONED, Call.ended_at.is_not(None))
    return [
        func.count(),
        sql.count_if(sql.ANSWERED),
        sql.count_if(sql.ABANDONED),
        sql.count_if(sql.VOICEMAIL),
        sql.count_if(sql.FAILED),
        sql.count_if(sql.EXPIRED),
        sql.count_if(sql.TRANSFERRED),
        sql.sum_if(sql.ANSWERED, ans),
        sql.sum_if(talked, talk),
        sql.count_if(talked),
        sql.sum_if(gave_up, waited),
        sql.count_if(gave_up),
        *sql.hist_columns(ans, sql.ANSWERED, sql.ANSWER_EDGES),
        *sql.hist_columns(waited, gave_up, sql.ABANDON_EDGES),
        *(sql.count_if(Call.routing == r) for r in AFTER_HOURS_ROUTINGS),
        sql.count_if(Call.routing == OUTBOUND),
        sql.count_if(sql.CALLBACK_REQUESTED),
    ]


def part_select(bind: Session | Connection, part: str) -> tuple[Any, list[ColumnElement[Any]]]:
    """(the timestamp column, the aggregate columns) of one part."""
    if part == "calls":
        return Call.started_at, call_columns(bind)
    if part == "messages":
        return Message.created_at, [
            func.count(),
            sql.count_if(Message.acknowledged_at.is_(None)),
        ]
    if part == "appointments":
        return Appointment.created_at, [
            func.count(),
            sql.count_if(Appointment.status == "cancelled"),
        ]
    return Recording.created_at, [
        func.count(),
        func.coalesce(func.sum(Recording.duration_s), 0),
    ]


def _account_col(part: str) -> Any:
    return {
        "calls": Call.account_id,
        "messages": Message.account_id,
        "appointments": Appointment.account_id,
        "recordings": Recording.account_id,
    }[part]


def answer_whole_seconds(bind: Session | Connection) -> ColumnElement[Any]:
    """An answered call's answer time rounded to the whole second (what the percentile reads)."""
    return cast(ColumnElement[Any], func.round(sql.answer_seconds(bind))).cast(Integer)


def _parse_hour(text_: str) -> dt.datetime:
    return dt.datetime(
        int(text_[0:4]), int(text_[5:7]), int(text_[8:10]), int(text_[11:13]), tzinfo=dt.UTC
    )


# -- recomputing -------------------------------------------------------------------------------


def _conn(bind: Session | Connection) -> Connection:
    return bind.connection() if isinstance(bind, Session) else bind


_KEYS = ("account_id", "hour", "day", "hour_of_day")
_UPSERTS: dict[tuple[str, frozenset[str]], Any] = {}
_PART_QUERIES: dict[tuple[str, str], Any] = {}


def dialect_insert(dialect: str) -> Any:
    """The dialect's INSERT (ON CONFLICT); imported when first needed: the PostgreSQL
    dialect costs ~0.1 s to import, which a SQLite deployment never needs."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(HOURLY)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(HOURLY)


def _upsert_statement(dialect: str, columns: frozenset[str]) -> Any:
    """INSERT … ON CONFLICT (account_id, hour) DO UPDATE of ``columns``, built once per set
    of columns (SQLAlchemy then reuses its compiled form)."""
    stmt = _UPSERTS.get((dialect, columns))
    if stmt is None:
        ins = dialect_insert(dialect)
        stmt = ins.on_conflict_do_update(
            index_elements=[HOURLY.c.account_id, HOURLY.c.hour],
            set_={c: ins.excluded[c] for c in sorted(columns)},
        )
        _UPSERTS[(dialect, columns)] = stmt
    return stmt


def _upsert(bind: Session | Connection, rows: list[dict[str, Any]], columns: set[str]) -> None:
    """Write ``columns`` of the given hourly rows (a new row's other columns start at 0)."""
    if not rows:
        return
    stmt = _upsert_statement(sql.dialect_of(bind), frozenset(columns))
    keep = (*_KEYS, *sorted(columns))
    conn = _conn(bind)
    for k in range(0, len(rows), UPSERT_ROWS):
        conn.execute(stmt, [{c: r[c] for c in keep} for r in rows[k : k + UPSERT_ROWS]])


def _part_query(bind: Session | Connection, part: str) -> Any:
    """The part's sums per UTC hour of one account between two instants (built once)."""
    dialect = sql.dialect_of(bind)
    q = _PART_QUERIES.get((dialect, part))
    if q is None:
        ts, cols = part_select(bind, part)
        bucket = sql.utc_hour(bind, ts)
        q = (
            select(bucket, *cols)
            .where(
                _account_col(part) == bindparam("account_id"),
                ts >= bindparam("lo"),
                ts < bindparam("hi"),
            )
            .group_by(bucket)
        )
        _PART_QUERIES[(dialect, part)] = q
    return q


def _blank(account_id: uuid.UUID, hour: dt.datetime) -> dict[str, Any]:
    local = hour.astimezone(PARIS)
    row: dict[str, Any] = {
        "account_id": account_id,
        "hour": hour,
        "day": local.date(),
        "hour_of_day": local.hour,
    }
    for cols in PART_COLUMNS.values():
        for c in cols:
            row[c] = 0
    return row


def recompute(
    bind: Session | Connection, account_id: uuid.UUID, hours: Mapping[dt.datetime, set[str]]
) -> None:
    """Recompute the given UTC hours of one account from the rows, for the parts named."""
    if not hours:
        return
    conn = _conn(bind)
    lo, hi = min(hours), max(hours) + HOUR
    rows = {h: _blank(account_id, h) for h in hours}
    parts = set().union(*hours.values())
    for part in sorted(parts):
        if part == SECONDS_PART:
            continue
        names = PART_COLUMNS[part]
        q = _part_query(bind, part)
        for found in conn.execute(q, {"account_id": account_id, "lo": lo, "hi": hi}):
            h = _parse_hour(found[0])
            if h in rows:
                rows[h].update(zip(names, (v or 0 for v in found[1:]), strict=True))
    changed = {c for p in parts for c in PART_COLUMNS.get(p, ())}
    _upsert(bind, [rows[h] for h in sorted(rows)], changed)
    # An hour left with nothing in it (its rows deleted: erasure, retention, off-boarding)
    # goes, rather than stay as zeros — only tested when a recount found an hour empty.
    firsts = [PART_COLUMNS[p][0] for p in parts if p in PART_COLUMNS]
    emptied = [h for h, r in rows.items() if not any(r[c] for c in firsts)]
    if emptied:
        conn.execute(
            delete(HOURLY).where(
                HOURLY.c.account_id == account_id,
                HOURLY.c.hour.in_(emptied),
                HOURLY.c.received == 0,
                HOURLY.c.messages == 0,
                HOURLY.c.appointments == 0,
                HOURLY.c.recordings == 0,
            )
        )
    days = {h.astimezone(PARIS).date() for h, p in hours.items() if SECONDS_PART in p}
    if len(days) > DAY_BY_DAY:
        _recompute_seconds_bulk(bind, account_id, days)
    elif days:
        _recompute_seconds(bind, account_id, days)


def _recompute_seconds(
    bind: Session | Connection, account_id: uuid.UUID, days: Iterable[dt.date]
) -> None:
    conn = _conn(bind)
    days = sorted(days)
    conn.execute(delete(SECONDS).where(SECONDS.c.account_id == account_id, SECONDS.c.day.in_(days)))
    secs = answer_whole_seconds(bind)
    for day in days:
        lower, upper = paris_day_bounds(day)
        q = (
            select(literal(account_id, Uuid()), literal(day, Date()), secs, func.count())
            .where(
                Call.account_id == account_id,
                Call.started_at >= lower,
                Call.started_at < upper,
                sql.ANSWERED,
                Call.answered_at.is_not(None),
            )
            .group_by(secs)
        )
        conn.execute(SECONDS.insert().from_select(["account_id", "day", "seconds", "calls"], q))


def rebuild(bind: Session | Connection, account_id: uuid.UUID | None = None) -> int:
    """Recompute every hour of one account (or of every account) from its rows; returns how
    many hourly rows were written. On PostgreSQL the caller sets the account (row-level
    security): ``permanence stats rebuild`` and the migration do it per account."""
    conn = _conn(bind)
    where_acc = [] if account_id is None else [HOURLY.c.account_id == account_id]
    conn.execute(delete(HOURLY).where(*where_acc))
    where_sec = [] if account_id is None else [SECONDS.c.account_id == account_id]
    conn.execute(delete(SECONDS).where(*where_sec))
    rows: dict[tuple[uuid.UUID, dt.datetime], dict[str, Any]] = {}
    days: set[tuple[uuid.UUID, dt.date]] = set()
    for part, names in PART_COLUMNS.items():
        ts, cols = part_select(bind, part)
        acc = _account_col(part)
        bucket = sql.utc_hour(bind, ts)
        q = select(acc, bucket, *cols).group_by(acc, bucket)
        if account_id is not None:
            q = q.where(acc == account_id)
        for found in conn.execute(q):
            h = _parse_hour(found[1])
            row = rows.setdefault((found[0], h), _blank(found[0], h))
            row.update(zip(names, (v or 0 for v in found[2:]), strict=True))
            if part == "calls":
                days.add((found[0], row["day"]))
    batch = list(rows.values())
    _upsert(bind, batch, {c for cols in PART_COLUMNS.values() for c in cols})
    by_account: dict[uuid.UUID, set[dt.date]] = {}
    for acc_id, day in days:
        by_account.setdefault(acc_id, set()).add(day)
    for acc_id, account_days in by_account.items():
        _recompute_seconds_bulk(bind, acc_id, account_days)
    return len(batch)


def _recompute_seconds_bulk(
    bind: Session | Connection, account_id: uuid.UUID, days: set[dt.date]
) -> None:
    """The answer seconds of many days in one pass: group by UTC hour and second over the
    days' range, fold the hours into Paris days in Python (one query, not one per day)."""
    conn = _conn(bind)
    conn.execute(
        delete(SECONDS).where(SECONDS.c.account_id == account_id, SECONDS.c.day.in_(sorted(days)))
    )
    lower, upper = paris_day_bounds(min(days))[0], paris_day_bounds(max(days))[1]
    secs = answer_whole_seconds(bind)
    bucket = sql.utc_hour(bind, Call.started_at)
    q = (
        select(bucket, secs, func.count())
        .where(
            Call.account_id == account_id,
            Call.started_at >= lower,
            Call.started_at < upper,
            sql.ANSWERED,
            Call.answered_at.is_not(None),
        )
        .group_by(bucket, secs)
    )
    counts: dict[tuple[dt.date, int], int] = {}
    for h, sec, n in conn.execute(q):
        day = _parse_hour(h).astimezone(PARIS).date()
        if day in days:
            counts[(day, int(sec))] = counts.get((day, int(sec)), 0) + int(n)
    out = [
        {"account_id": account_id, "day": d, "seconds": sec, "calls": n}
        for (d, sec), n in sorted(counts.items())
    ]
    for k in range(0, len(out), 5000):
        conn.execute(SECONDS.insert(), out[k : k + 5000])
