"""The figures of one account over a period (docs/statistics.md).

``account_statistics`` reads them from the hourly aggregates (``stats.aggregates``): a GROUP BY
Paris day and one by Paris hour of the day over at most 24 rows a day, and the answered calls
per whole second of answer time for the 90th percentile — none of it scans the period's calls.
``scan_account_statistics`` computes the same figures from the rows themselves, with the same
expressions (one GROUP BY UTC hour over the calls, the percentile over the calls, three counts):
the reference the aggregates are tested against (tests/integration/test_stats_aggregates.py).
Nothing here reads a caller's identity or a message's content.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from permanence.calls.hours import AFTER_HOURS as AFTER_HOURS_ROUTINGS
from permanence.calls.model import Call
from permanence.context import Role
from permanence.db import COMMIT_STATS, ctx_of, run_commit_steps
from permanence.errors import NotFound, PermissionDenied
from permanence.messages.model import Appointment, Message
from permanence.recordings.model import Recording
from permanence.render import PARIS
from permanence.stats import aggregates, recount
from permanence.stats.model import AccountAnswerSeconds, AccountHourlyStats
from permanence.stats.periods import Period
from permanence.stats.sql import (
    ABANDON_EDGES,
    ANSWER_EDGES,
    ANSWERED,
    count_if,
    hist_labels,
    in_period,
    percentile,
    utc_hour,
)

ACCOUNT_READERS = frozenset({Role.SUPERVISOR, Role.DPO, Role.ADMIN, Role.CLIENT, Role.SYSTEM})
_N_ANS = len(ANSWER_EDGES) + 1
_N_AB = len(ABANDON_EDGES) + 1
# Where the call-backs asked for sit in a CALL_COLUMNS row (added last, after ``outbound``).
CALLBACK_REQUEST_AT = recount.CALL_COLUMNS.index("callback_request")


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
    # Calls that arrived out of the mandate's opening hours (calls.routing, calls.hours).
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


class _Fold:
    """Sums of CALL_COLUMNS rows (one per hour or per day), folded into the figures."""

    def __init__(self, period: Period) -> None:
        self.calls = Counts()
        self.answer_sum = self.talk_sum = self.waited_sum = 0.0
        self.talk_n = self.waited_n = 0
        self.answer_hist = [0] * _N_ANS
        self.abandon_hist = [0] * _N_AB
        self.by_hour = [Counts() for _ in range(24)]
        self.by_day: dict[dt.date, Counts] = {d: Counts() for d in period.days}
        self.by_month: dict[str, Counts] = {}
        self.after_hours: dict[str, int] = {}
        self.outbound = 0

    def add(self, values: Any, day: dt.date, hour: int | None) -> Counts:
        """``values``: CALL_COLUMNS in order; ``hour`` None when the row is a whole day."""
        bucket = Counts(*(int(v) for v in values[0:7]))
        bucket.callback_request = int(values[CALLBACK_REQUEST_AT])
        self.calls.add(bucket)
        self.answer_sum += float(values[7])
        self.talk_sum += float(values[8])
        self.talk_n += int(values[9])
        self.waited_sum += float(values[10])
        self.waited_n += int(values[11])
        for i in range(_N_ANS):
            self.answer_hist[i] += int(values[12 + i])
        for i in range(_N_AB):
            self.abandon_hist[i] += int(values[12 + _N_ANS + i])
        if hour is not None:
            self.by_hour[hour].add(bucket)
        self.by_day.setdefault(day, Counts()).add(bucket)
        if bucket.received:  # an hour (or day) left with no call names no month
            self.by_month.setdefault(f"{day.year:04d}-{day.month:02d}", Counts()).add(bucket)
        base = 12 + _N_ANS + _N_AB
        for i, routing in enumerate(AFTER_HOURS_ROUTINGS):
            self.after_hours[routing] = self.after_hours.get(routing, 0) + int(values[base + i])
        self.outbound += int(values[base + len(AFTER_HOURS_ROUTINGS)])
        return bucket

    def stats(
        self,
        account_id: uuid.UUID,
        period: Period,
        p90: float | None,
        others: tuple[int, int, int, int, int, int],
    ) -> AccountStats:
        calls = self.calls
        return AccountStats(
            account_id=account_id,
            period=period,
            calls=calls,
            answer_s_avg=self.answer_sum / calls.answered if calls.answered else None,
            answer_s_p90=p90,
            answer_hist=self.answer_hist,
            talk_s_total=round(self.talk_sum),
            talk_s_avg=self.talk_sum / self.talk_n if self.talk_n else None,
            abandon_after_s_avg=self.waited_sum / self.waited_n if self.waited_n else None,
            abandon_hist=self.abandon_hist,
            messages_taken=others[0],
            messages_unacknowledged=others[1],
            appointments_booked=others[2],
            appointments_cancelled=others[3],
            recordings=others[4],
            recording_s=others[5],
            by_hour=self.by_hour,
            by_day=sorted(self.by_day.items()),
            by_month=sorted(self.by_month.items()),
            after_hours=self.after_hours,
            outbound=self.outbound,
        )


def percentile_of_counts(counts: list[tuple[int, int]], q: float) -> float | None:
    """PostgreSQL's ``percentile_cont(q)`` over values given as (value, how many), sorted."""
    n = sum(c for _v, c in counts)
    if n == 0:
        return None
    pos = q * (n - 1)
    k = math.floor(pos)
    lo = hi = None
    seen = 0
    for value, c in counts:
        if lo is None and k < seen + c:
            lo = value
        if k + 1 < seen + c:
            hi = value
            break
        seen += c
    assert lo is not None  # k < n
    if hi is None or pos == k:
        return float(lo)
    return lo + (hi - lo) * (pos - k)


def account_statistics(session: Session, account_id: uuid.UUID, period: Period) -> AccountStats:
    """Every figure of docs/statistics.md for one account and period, from the aggregates."""
    _require_account_reader(session, account_id)
    session.flush()
    # This transaction's own writes, if any: the commit's steps that come before the hour
    # rows first (the audit head: the lock order of ADR 0035), then the hours.
    run_commit_steps(session, before=COMMIT_STATS)
    aggregates.apply_pending(session)
    t = AccountHourlyStats
    in_days = and_(t.account_id == account_id, t.day >= period.first, t.day <= period.last)
    sums = [func.sum(getattr(t, c)) for c in recount.CALL_COLUMNS]
    other = [
        func.sum(getattr(t, c))
        for p in ("messages", "appointments", "recordings")
        for c in recount.PART_COLUMNS[p]
    ]
    fold = _Fold(period)
    totals = [0] * len(other)
    for row in session.execute(select(t.day, *sums, *other).where(in_days).group_by(t.day)):
        fold.add(row[1 : 1 + len(sums)], row[0], None)
        for i, v in enumerate(row[1 + len(sums) :]):
            totals[i] += int(v or 0)
    counts = [func.sum(getattr(t, c)) for c in recount.CALL_COLUMNS[0:7]]
    for row in session.execute(
        select(t.hour_of_day, *counts).where(in_days).group_by(t.hour_of_day)
    ):
        fold.by_hour[int(row[0])] = Counts(*(int(v or 0) for v in row[1:]))
    s = AccountAnswerSeconds
    seconds = [
        (int(v), int(c))
        for v, c in session.execute(
            select(s.seconds, func.sum(s.calls))
            .where(s.account_id == account_id, s.day >= period.first, s.day <= period.last)
            .group_by(s.seconds)
            .order_by(s.seconds)
        )
    ]
    p90 = percentile_of_counts(seconds, 0.9)
    return fold.stats(account_id, period, p90, (*totals,))  # type: ignore[arg-type]


def scan_account_statistics(
    session: Session, account_id: uuid.UUID, period: Period
) -> AccountStats:
    """The same figures from the rows: the reference the aggregates must equal."""
    _require_account_reader(session, account_id)
    where = in_period(account_id, period)
    hour = utc_hour(session, Call.started_at).label("hour")
    cols = recount.call_columns(session)
    rows = session.execute(select(hour, *cols).where(where).group_by(hour)).all()
    fold = _Fold(period)
    for row in rows:
        h = row[0]  # "YYYY-MM-DD HH" in UTC; strptime would cost more than the query
        local = dt.datetime(
            int(h[0:4]), int(h[5:7]), int(h[8:10]), int(h[11:13]), tzinfo=dt.UTC
        ).astimezone(PARIS)
        fold.add(row[1:], local.date(), local.hour)
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
    answered = and_(where, ANSWERED, Call.answered_at.is_not(None))
    n = int(session.scalar(select(func.count()).where(answered)) or 0)
    p90 = percentile(session, recount.answer_whole_seconds(session), answered, 0.9, n)
    others = (int(msg[0]), int(msg[1]), int(appt[0]), int(appt[1]), int(rec[0]), int(rec[1] or 0))
    return fold.stats(account_id, period, p90, others)
