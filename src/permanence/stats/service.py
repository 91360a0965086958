"""Statistics from SQL aggregates: per account and period, per operator, and the live board.

Each figure is defined in docs/statistics.md. The account figures come from one GROUP BY over
the account's calls in the period (by UTC hour, on the ``(account_id, started_at)`` index):
the hourly buckets are then folded in Python into totals, hours of the day and days — Paris
is a whole number of hours from UTC, so UTC hours map exactly onto Paris hours. The 90th
percentile of answer time is a second query (``percentile_cont`` on PostgreSQL; on SQLite the
two neighbouring values, found with ORDER BY … LIMIT 2 OFFSET k, interpolated the same way).
Nothing here reads a caller's identity or a message's content.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    case,
    cast,
    delete,
    func,
    literal,
    select,
)
from sqlalchemy.orm import Session

from permanence.accounts.model import Account
from permanence.calls import outcome as outcomes
from permanence.calls.model import Call
from permanence.context import Role
from permanence.db import acting_for, ctx_of, utcnow
from permanence.errors import NotFound, PermissionDenied, ValidationFailed
from permanence.messages.model import Appointment, Message
from permanence.recordings.model import Recording
from permanence.render import PARIS
from permanence.routing.hours import AFTER_HOURS as AFTER_HOURS_ROUTINGS
from permanence.routing.hours import OUTBOUND
from permanence.staff.auth import IDLE_TIMEOUT
from permanence.staff.model import User, WebSession
from permanence.stats.model import OperatorDailyStats, OperatorPresence

ACCOUNT_READERS = frozenset({Role.SUPERVISOR, Role.DPO, Role.ADMIN, Role.CLIENT, Role.SYSTEM})
BOARD_READERS = frozenset({Role.SUPERVISOR, Role.ADMIN, Role.SYSTEM})
MAX_PERIOD_DAYS = 400
# Statistics exist only between these days: outside them a date is a mistake (and near the
# ends of the calendar, day arithmetic would overflow: a 500 instead of a clear 422).
EARLIEST_DAY, LATEST_DAY = dt.date(2000, 1, 1), dt.date(2999, 12, 31)


def _in_calendar(*days: dt.date | None) -> None:
    for day in days:
        if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY:
            raise ValidationFailed(
                f"dates must be between {EARLIEST_DAY.isoformat()} and {LATEST_DAY.isoformat()}"
            )


# Histogram edges in seconds: a value v falls in the first bucket whose edge is >= v.
ANSWER_EDGES = (10, 20, 30, 60)
ABANDON_EDGES = (10, 30, 60)
# A call still "ringing" after this long lost its status callback: it is not waiting.
STALE_WAIT = dt.timedelta(hours=1)


# -- periods ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Whole days in Paris time, both ends included."""

    first: dt.date
    last: dt.date

    @property
    def lower(self) -> dt.datetime:
        return dt.datetime.combine(self.first, dt.time(), PARIS).astimezone(dt.UTC)

    @property
    def upper(self) -> dt.datetime:
        nxt = self.last + dt.timedelta(days=1)
        return dt.datetime.combine(nxt, dt.time(), PARIS).astimezone(dt.UTC)

    @property
    def days(self) -> list[dt.date]:
        n = (self.last - self.first).days + 1
        return [self.first + dt.timedelta(days=i) for i in range(n)]

    @classmethod
    def of(cls, first: dt.date | None, last: dt.date | None, *, default_days: int = 30) -> Period:
        _in_calendar(first, last)
        today = utcnow().astimezone(PARIS).date()
        last = last or (today if first is None else first + dt.timedelta(days=default_days - 1))
        first = first or last - dt.timedelta(days=default_days - 1)
        if last < first:
            raise ValidationFailed("end must not be before start")
        if (last - first).days + 1 > MAX_PERIOD_DAYS:
            raise ValidationFailed(f"a period is at most {MAX_PERIOD_DAYS} days")
        return cls(first, last)

    @classmethod
    def month(cls, month: str) -> Period:
        """``YYYY-MM`` as a period."""
        try:
            first = dt.date.fromisoformat(f"{month}-01")
        except ValueError:
            raise ValidationFailed("month must be written YYYY-MM, e.g. 2026-03") from None
        _in_calendar(first)
        nxt = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        return cls(first, nxt - dt.timedelta(days=1))


# -- SQL building blocks (shared with usage.py and the bench) --------------------------------


def seconds_between(session: Session, end: Any, start: Any) -> ColumnElement[Any]:
    """``end - start`` in seconds, as a float, on either database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def utc_hour(session: Session, column: Any) -> ColumnElement[str]:
    """The UTC hour of a timestamp as text ``YYYY-MM-DD HH``."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")
    return func.strftime("%Y-%m-%d %H", column)


def count_if(cond: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def sum_if(cond: ColumnElement[bool], value: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((cond, value), else_=None)), 0)


# One condition per terminal outcome (calls.outcome): every figure counts the same codes.
ANSWERED = Call.outcome == outcomes.ANSWERED
VOICEMAIL = Call.outcome == outcomes.VOICEMAIL
ABANDONED = Call.outcome == outcomes.ABANDONED
FAILED = Call.outcome == outcomes.FAILED
EXPIRED = Call.outcome == outcomes.EXPIRED
TRANSFERRED = Call.outcome == outcomes.TRANSFERRED
CALLBACK_REQUESTED = Call.outcome == outcomes.CALLBACK_REQUESTED
MISSED = Call.outcome.in_(
    (outcomes.VOICEMAIL, outcomes.ABANDONED, outcomes.FAILED, outcomes.EXPIRED)
)


def answer_seconds(session: Session) -> ColumnElement[Any]:
    return seconds_between(session, Call.answered_at, Call.started_at)


def talk_seconds(session: Session) -> ColumnElement[Any]:
    """The provider's talk time, else end minus answer (None while the call goes on)."""
    return func.coalesce(Call.talk_s, seconds_between(session, Call.ended_at, Call.answered_at))


def in_period(account_id: uuid.UUID, period: Period) -> ColumnElement[bool]:
    return and_(
        Call.account_id == account_id,
        Call.started_at >= period.lower,
        Call.started_at < period.upper,
    )


def _hist(value: ColumnElement[Any], cond: ColumnElement[bool], edges: Sequence[int]) -> list[Any]:
    cols = []
    lo: int | None = None
    for edge in edges:
        c = and_(cond, value <= edge) if lo is None else and_(cond, value > lo, value <= edge)
        cols.append(count_if(c))
        lo = edge
    cols.append(count_if(and_(cond, value > (lo or 0))))
    return cols


def hist_labels(edges: Sequence[int]) -> list[str]:
    out = [f"≤ {edges[0]} s"]
    out += [f"{a}–{b} s" for a, b in itertools.pairwise(edges)]
    out.append(f"> {edges[-1]} s")
    return out


# -- account statistics ----------------------------------------------------------------------


@dataclass
class Counts:
    received: int = 0
    answered: int = 0
    abandoned: int = 0
    voicemail: int = 0
    failed: int = 0
    expired: int = 0
    transferred: int = 0
    callback_request: int = 0  # asked for a call-back in the queue (not abandoned)

    def add(self, other: Counts) -> None:
        self.received += other.received
        self.answered += other.answered
        self.abandoned += other.abandoned
        self.voicemail += other.voicemail
        self.failed += other.failed
        self.expired += other.expired
        self.transferred += other.transferred
        self.callback_request += other.callback_request

    def as_dict(self) -> dict[str, int]:
        return {
            "received": self.received,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "voicemail": self.voicemail,
            "failed": self.failed,
            "expired": self.expired,
            "transferred": self.transferred,
            "callback_request": self.callback_request,
        }


@dataclass
class AccountStats:
    account_id: uuid.UUID
    period: Period
    calls: Counts
    answer_s_avg: float | None
    answer_s_p90: float | None
    answer_hist: list[int]
    talk_s_total: int
    talk_s_avg: float | None
    abandon_after_s_avg: float | None
    abandon_hist: list[int]
    messages_taken: int
    messages_unacknowledged: int
    appointments_booked: int
    appointments_cancelled: int
    recordings: int
    recording_s: int
    by_hour: list[Counts]  # 24 Paris hours of the day
    by_day: list[tuple[dt.date, Counts]]
    by_month: list[tuple[str, Counts]] = field(default_factory=list)
    # Calls that arrived out of the mandate's opening hours (calls.routing, routing.hours).
    after_hours: dict[str, int] = field(default_factory=dict)
    # Call-backs placed by operators (calls.direction outbound), included in ``calls``.
    outbound: int = 0

    @property
    def after_hours_total(self) -> int:
        return sum(self.after_hours.values())

    @property
    def in_progress(self) -> int:
        c = self.calls
        ended = c.answered + c.abandoned + c.voicemail + c.failed + c.expired + c.transferred
        ended += c.callback_request
        return c.received - ended

    @property
    def answer_rate(self) -> float | None:
        return _ratio(self.calls.answered, self.calls.received)

    @property
    def abandon_rate(self) -> float | None:
        return _ratio(self.calls.abandoned, self.calls.received)

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": str(self.account_id),
            "start": self.period.first.isoformat(),
            "end": self.period.last.isoformat(),
            "calls": {**self.calls.as_dict(), "in_progress": self.in_progress},
            "answer_rate": _round(self.answer_rate, 4),
            "abandon_rate": _round(self.abandon_rate, 4),
            "answer_time_s": {
                "average": _round(self.answer_s_avg),
                "p90": _round(self.answer_s_p90),
                "histogram": dict(zip(hist_labels(ANSWER_EDGES), self.answer_hist, strict=True)),
            },
            "talk_time_s": {"total": self.talk_s_total, "average": _round(self.talk_s_avg)},
            "abandoned_after_s": {
                "average": _round(self.abandon_after_s_avg),
                "histogram": dict(zip(hist_labels(ABANDON_EDGES), self.abandon_hist, strict=True)),
            },
            "messages": {
                "taken": self.messages_taken,
                "unacknowledged": self.messages_unacknowledged,
            },
            "appointments": {
                "booked": self.appointments_booked,
                "cancelled": self.appointments_cancelled,
            },
            "recordings": {"count": self.recordings, "seconds": self.recording_s},
            "after_hours": {
                "total": self.after_hours_total,
                "voicemail": self.after_hours.get("after_hours_voicemail", 0),
                "forward": self.after_hours.get("after_hours_forward", 0),
                "answer": self.after_hours.get("after_hours_answer", 0),
            },
            "outbound": self.outbound,
            "by_hour": [{"hour": h, **c.as_dict()} for h, c in enumerate(self.by_hour)],
            "by_day": [{"day": d.isoformat(), **c.as_dict()} for d, c in self.by_day],
            "by_month": [{"month": m, **c.as_dict()} for m, c in self.by_month],
        }


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _round(v: float | None, digits: int = 1) -> float | None:
    return None if v is None else round(v, digits)


def _require_account_reader(session: Session, account_id: uuid.UUID) -> None:
    ctx = ctx_of(session)
    if ctx.role not in ACCOUNT_READERS:
        raise PermissionDenied("account statistics are for supervisors, the DPO and the client")
    if ctx.account_id != account_id:
        raise NotFound("no such account")


def account_statistics(session: Session, account_id: uuid.UUID, period: Period) -> AccountStats:
    """Every figure of docs/statistics.md for one account and period."""
    _require_account_reader(session, account_id)
    where = in_period(account_id, period)
    ans = answer_seconds(session)
    talk = talk_seconds(session)
    waited = seconds_between(session, Call.ended_at, Call.started_at)
    talked = and_(ANSWERED, talk.is_not(None))
    hour = utc_hour(session, Call.started_at).label("hour")
    cols = [
        hour,
        func.count().label("received"),
        count_if(ANSWERED),
        count_if(ABANDONED),
        count_if(VOICEMAIL),
        count_if(FAILED),
        count_if(EXPIRED),
        count_if(TRANSFERRED),
        count_if(CALLBACK_REQUESTED),
        sum_if(ANSWERED, ans),
        sum_if(talked, talk),
        count_if(talked),
        sum_if(and_(ABANDONED, Call.ended_at.is_not(None)), waited),
        count_if(and_(ABANDONED, Call.ended_at.is_not(None))),
        *_hist(ans, ANSWERED, ANSWER_EDGES),
        *_hist(waited, and_(ABANDONED, Call.ended_at.is_not(None)), ABANDON_EDGES),
        # Call-backs (outbound, routing.callbacks), then last: calls out of the mandate's
        # hours, by what happened (calls.routing).
        count_if(Call.routing == OUTBOUND),
        *(count_if(Call.routing == r) for r in AFTER_HOURS_ROUTINGS),
    ]
    rows = session.execute(select(*cols).where(where).group_by(hour)).all()

    calls = Counts()
    answer_sum = talk_sum = waited_sum = 0.0
    talk_n = waited_n = 0
    n_ans_hist = len(ANSWER_EDGES) + 1
    answer_hist = [0] * n_ans_hist
    abandon_hist = [0] * (len(ABANDON_EDGES) + 1)
    by_hour = [Counts() for _ in range(24)]
    by_day = {d: Counts() for d in period.days}
    by_month: dict[str, Counts] = {}
    after_hours: dict[str, int] = {}
    outbound = 0
    for row in rows:
        outbound += int(row[-len(AFTER_HOURS_ROUTINGS) - 1])
        bucket = Counts(*(int(v) for v in row[1:9]))
        calls.add(bucket)
        answer_sum += float(row[9])
        talk_sum += float(row[10])
        talk_n += int(row[11])
        waited_sum += float(row[12])
        waited_n += int(row[13])
        for i in range(n_ans_hist):
            answer_hist[i] += int(row[14 + i])
        for i in range(len(abandon_hist)):
            abandon_hist[i] += int(row[14 + n_ans_hist + i])
        h = row[0]  # "YYYY-MM-DD HH" in UTC; strptime would cost more than the query
        local = dt.datetime(
            int(h[0:4]), int(h[5:7]), int(h[8:10]), int(h[11:13]), tzinfo=dt.UTC
        ).astimezone(PARIS)
        by_hour[local.hour].add(bucket)
        by_day.setdefault(local.date(), Counts()).add(bucket)
        by_month.setdefault(f"{local.year:04d}-{local.month:02d}", Counts()).add(bucket)
        for i, routing in enumerate(AFTER_HOURS_ROUTINGS):
            after_hours[routing] = after_hours.get(routing, 0) + int(
                row[-len(AFTER_HOURS_ROUTINGS) + i]
            )

    msg = session.execute(
        select(func.count(), count_if(Message.acknowledged_at.is_(None))).where(
            Message.account_id == account_id,
            Message.created_at >= period.lower,
            Message.created_at < period.upper,
        )
    ).one()
    appt = session.execute(
        select(func.count(), count_if(Appointment.status == "cancelled")).where(
            Appointment.account_id == account_id,
            Appointment.created_at >= period.lower,
            Appointment.created_at < period.upper,
        )
    ).one()
    rec = session.execute(
        select(func.count(), func.coalesce(func.sum(Recording.duration_s), 0)).where(
            Recording.account_id == account_id,
            Recording.created_at >= period.lower,
            Recording.created_at < period.upper,
        )
    ).one()
    return AccountStats(
        account_id=account_id,
        period=period,
        calls=calls,
        answer_s_avg=answer_sum / calls.answered if calls.answered else None,
        answer_s_p90=percentile(session, ans, and_(where, ANSWERED), 0.9, calls.answered),
        answer_hist=answer_hist,
        talk_s_total=round(talk_sum),
        talk_s_avg=talk_sum / talk_n if talk_n else None,
        abandon_after_s_avg=waited_sum / waited_n if waited_n else None,
        abandon_hist=abandon_hist,
        messages_taken=int(msg[0]),
        messages_unacknowledged=int(msg[1]),
        appointments_booked=int(appt[0]),
        appointments_cancelled=int(appt[1]),
        recordings=int(rec[0]),
        recording_s=int(rec[1] or 0),
        by_hour=by_hour,
        by_day=sorted(by_day.items()),
        by_month=sorted(by_month.items()),
        after_hours=after_hours,
        outbound=outbound,
    )


def percentile(
    session: Session, value: ColumnElement[Any], where: ColumnElement[bool], q: float, n: int
) -> float | None:
    """The continuous percentile ``q`` of ``value`` over ``n`` rows (PostgreSQL's
    ``percentile_cont``: linear interpolation between the two nearest ranks)."""
    if n == 0:
        return None
    if session.get_bind().dialect.name == "postgresql":
        got = session.scalar(select(func.percentile_cont(q).within_group(value)).where(where))
        return None if got is None else float(got)
    pos = q * (n - 1)
    k = math.floor(pos)
    vals = [
        float(v)
        for v in session.scalars(select(value).where(where).order_by(value).limit(2).offset(k))
    ]
    if not vals:
        return None
    if len(vals) == 1 or pos == k:
        return vals[0]
    return vals[0] + (vals[1] - vals[0]) * (pos - k)


# -- per operator ------------------------------------------------------------------------------


@dataclass
class OperatorStats:
    user_id: uuid.UUID
    display_name: str
    period: Period
    days: list[tuple[dt.date, int, int, int, int]]  # day, calls, talk s, wrap-ups, wrap-up s

    @property
    def calls_handled(self) -> int:
        return sum(d[1] for d in self.days)

    @property
    def talk_s(self) -> int:
        return sum(d[2] for d in self.days)

    @property
    def wrap_up_s(self) -> int:
        return sum(d[4] for d in self.days)

    @property
    def wrap_up_s_avg(self) -> float | None:
        n = sum(d[3] for d in self.days)
        return self.wrap_up_s / n if n else None

    @property
    def talk_s_avg(self) -> float | None:
        return self.talk_s / self.calls_handled if self.calls_handled else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": str(self.user_id),
            "display_name": self.display_name,
            "start": self.period.first.isoformat(),
            "end": self.period.last.isoformat(),
            "calls_handled": self.calls_handled,
            "talk_s": self.talk_s,
            "talk_s_average": _round(self.talk_s_avg),
            "wrap_up_s": self.wrap_up_s,
            "wrap_up_s_average": _round(self.wrap_up_s_avg),
            "days": [
                {"day": d.isoformat(), "calls": c, "talk_s": t, "wrap_ups": w, "wrap_up_s": ws}
                for d, c, t, w, ws in self.days
            ],
        }


def _staff_reader(session: Session, user_id: uuid.UUID | None) -> None:
    """The operator themself, or a supervisor; anyone else learns nothing."""
    ctx = ctx_of(session)
    if ctx.role in (Role.SUPERVISOR, Role.SYSTEM):
        return
    if ctx.role == Role.OPERATOR:
        if user_id is not None and ctx.actor_id == user_id:
            return
        raise NotFound("no such operator")
    raise PermissionDenied("operator statistics are for the operator and supervisors only")


def _operator_rows(session: Session, period: Period, user_id: uuid.UUID | None) -> list[Any]:
    q = (
        select(
            OperatorDailyStats.user_id,
            User.display_name,
            OperatorDailyStats.day,
            OperatorDailyStats.calls_handled,
            OperatorDailyStats.talk_s,
            OperatorDailyStats.wrap_ups,
            OperatorDailyStats.wrap_up_s,
        )
        .join(User, User.id == OperatorDailyStats.user_id)
        .where(OperatorDailyStats.day >= period.first, OperatorDailyStats.day <= period.last)
        .order_by(User.display_name, OperatorDailyStats.user_id, OperatorDailyStats.day)
    )
    if user_id is not None:
        q = q.where(OperatorDailyStats.user_id == user_id)
    return list(session.execute(q).all())


def operator_statistics(session: Session, user_id: uuid.UUID, period: Period) -> OperatorStats:
    _staff_reader(session, user_id)
    user = session.get(User, user_id)
    if user is None or user.role not in (Role.OPERATOR, Role.SUPERVISOR):
        raise NotFound("no such operator")
    days = [(r[2], r[3], r[4], r[5], r[6]) for r in _operator_rows(session, period, user_id)]
    return OperatorStats(user_id, user.display_name, period, days)


def team_statistics(session: Session, period: Period) -> list[OperatorStats]:
    """Every operator's aggregates for the period (supervisors)."""
    ctx = ctx_of(session)
    if ctx.role not in (Role.SUPERVISOR, Role.SYSTEM):
        raise PermissionDenied("operator statistics are for the operator and supervisors only")
    out: dict[uuid.UUID, OperatorStats] = {}
    for r in _operator_rows(session, period, None):
        stats = out.setdefault(r[0], OperatorStats(r[0], r[1], period, []))
        stats.days.append((r[2], r[3], r[4], r[5], r[6]))
    return list(out.values())


def purge_staff_stats(session: Session, days: int, *, now: dt.datetime | None = None) -> int:
    """Delete per-operator aggregates older than ``days`` days; returns how many rows."""
    ctx = ctx_of(session)
    if ctx.role not in (Role.SYSTEM, Role.ADMIN):
        raise PermissionDenied("only the retention job purges staff statistics")
    oldest_kept = (now or utcnow()).astimezone(PARIS).date() - dt.timedelta(days=days)
    result = session.execute(
        delete(OperatorDailyStats)
        .where(OperatorDailyStats.day < oldest_kept)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def count_staff_stats_due(session: Session, days: int, *, now: dt.datetime | None = None) -> int:
    oldest_kept = (now or utcnow()).astimezone(PARIS).date() - dt.timedelta(days=days)
    q = select(func.count()).where(OperatorDailyStats.day < oldest_kept)
    return int(session.scalar(q) or 0)


# -- the live board --------------------------------------------------------------------------


@dataclass
class AccountBoard:
    account_id: uuid.UUID
    slug: str
    name: str
    waiting: list[int]  # seconds each waiting call has waited, longest first
    answered_last_hour: int
    missed_last_hour: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": str(self.account_id),
            "slug": self.slug,
            "name": self.name,
            "waiting": len(self.waiting),
            "waiting_s": self.waiting,
            "longest_wait_s": self.waiting[0] if self.waiting else None,
            "answered_last_hour": self.answered_last_hour,
            "missed_last_hour": self.missed_last_hour,
        }


@dataclass
class OperatorBoard:
    user_id: uuid.UUID
    display_name: str
    role: str
    state: str
    since_s: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": str(self.user_id),
            "display_name": self.display_name,
            "role": self.role,
            "state": self.state,
            "since_s": self.since_s,
        }


@dataclass
class Board:
    at: dt.datetime
    accounts: list[AccountBoard]
    operators: list[OperatorBoard]
    # Calls in the provider's queue and where each is (permanence.routing.board).
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def waiting(self) -> int:
        return sum(len(a.waiting) for a in self.accounts)

    def as_dict(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for o in self.operators:
            states[o.state] = states.get(o.state, 0) + 1
        return {
            "at": self.at.isoformat(),
            "waiting": self.waiting,
            "answered_last_hour": sum(a.answered_last_hour for a in self.accounts),
            "missed_last_hour": sum(a.missed_last_hour for a in self.accounts),
            "operators_by_state": states,
            "accounts": [a.as_dict() for a in self.accounts],
            "operators": [o.as_dict() for o in self.operators],
            "calls": self.calls,
        }


def board(session: Session, *, now: dt.datetime | None = None) -> Board:
    """Calls waiting per account, signed-in staff and their state, the last hour's calls."""
    ctx = ctx_of(session)
    if ctx.role not in BOARD_READERS:
        raise PermissionDenied("the live board is for supervisors")
    now = now or utcnow()
    hour_ago = now - dt.timedelta(hours=1)
    waiting_c = and_(
        Call.status.in_(("queued", "ringing")),
        Call.outcome.is_(None),
        Call.started_at >= now - STALE_WAIT,
    )
    accounts = session.execute(
        select(Account.id, Account.slug, Account.name).order_by(Account.slug)
    ).all()
    out: list[AccountBoard] = []
    for account_id, slug, name in accounts:
        with acting_for(session, account_id):
            recent = and_(
                Call.account_id == account_id,
                Call.started_at >= hour_ago,
                Call.started_at <= now,
            )
            waits = session.scalars(
                select(Call.started_at).where(recent, waiting_c).order_by(Call.started_at)
            ).all()
            answered, lost = session.execute(
                select(count_if(ANSWERED), count_if(MISSED)).where(recent)
            ).one()
        out.append(
            AccountBoard(
                account_id,
                slug,
                name,
                [max(0, round((now - w).total_seconds())) for w in waits],
                int(answered),
                int(lost),
            )
        )
    live = (
        select(WebSession.user_id)
        .where(WebSession.expires_at > now, WebSession.last_seen_at >= now - IDLE_TIMEOUT)
        .distinct()
    )
    staff = session.execute(
        select(
            User.id, User.display_name, User.role, OperatorPresence.state, OperatorPresence.since
        )
        .outerjoin(OperatorPresence, OperatorPresence.user_id == User.id)
        .where(
            User.role.in_((Role.OPERATOR, Role.SUPERVISOR)),
            User.active.is_(True),
            User.id.in_(live),
            func.coalesce(OperatorPresence.state, literal("free")) != "offline",
        )
        .order_by(User.display_name)
    ).all()
    operators = [
        OperatorBoard(
            uid,
            name,
            role.value,
            state or "free",
            max(0, round((now - since).total_seconds())) if since else 0,
        )
        for uid, name, role, state, since in staff
    ]
    from permanence.routing.board import live_calls

    return Board(now, out, operators, live_calls(session, now))


def billed_minutes(session: Session) -> ColumnElement[Any]:
    """Whole minutes started, per call (the invoice unit): ceil(talk seconds / 60)."""
    talk = cast(func.round(talk_seconds(session)), Integer)
    return (talk + 59) // 60
