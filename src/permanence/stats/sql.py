"""SQL building blocks of the statistics, shared by the account figures, the aggregates
kept per hour (``aggregates.py``), the usage report and the bench."""

from __future__ import annotations

import itertools
import math
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Integer, and_, case, cast, func, select
from sqlalchemy.orm import Session

from permanence.calls import outcome as outcomes
from permanence.calls.model import Call
from permanence.stats.periods import Period


def dialect_of(bind: Session | Connection) -> str:
    if isinstance(bind, Session):
        return bind.get_bind().dialect.name
    return bind.dialect.name


# Histogram edges in seconds: a value v falls in the first bucket whose edge is >= v.
ANSWER_EDGES = (10, 20, 30, 60)
ABANDON_EDGES = (10, 30, 60)


def seconds_between(session: Session | Connection, end: Any, start: Any) -> ColumnElement[Any]:
    """``end - start`` in seconds, as a float, on either database."""
    if dialect_of(session) == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def utc_hour(session: Session | Connection, column: Any) -> ColumnElement[str]:
    """The UTC hour of a timestamp as text ``YYYY-MM-DD HH``."""
    if dialect_of(session) == "postgresql":
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
MISSED = Call.outcome.in_(
    (outcomes.VOICEMAIL, outcomes.ABANDONED, outcomes.FAILED, outcomes.EXPIRED)
)


def answer_seconds(session: Session | Connection) -> ColumnElement[Any]:
    return seconds_between(session, Call.answered_at, Call.started_at)


def talk_seconds(session: Session | Connection) -> ColumnElement[Any]:
    """The provider's talk time, else end minus answer (None while the call goes on)."""
    return func.coalesce(Call.talk_s, seconds_between(session, Call.ended_at, Call.answered_at))


def in_period(account_id: uuid.UUID, period: Period) -> ColumnElement[bool]:
    return and_(
        Call.account_id == account_id,
        Call.started_at >= period.lower,
        Call.started_at < period.upper,
    )


def hist_columns(
    value: ColumnElement[Any], cond: ColumnElement[bool], edges: Sequence[int]
) -> list[Any]:
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


def percentile(
    session: Session, value: ColumnElement[Any], where: ColumnElement[bool], q: float, n: int
) -> float | None:
    """The continuous percentile ``q`` of ``value`` over ``n`` rows (PostgreSQL's
    ``percentile_cont``: linear interpolation between the two nearest ranks)."""
    if n == 0:
        return None
    if dialect_of(session) == "postgresql":
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


def billed_minutes(session: Session | Connection) -> ColumnElement[Any]:
    """Whole minutes started, per call (the invoice unit): ceil(talk seconds / 60)."""
    talk = cast(func.round(talk_seconds(session)), Integer)
    return (talk + 59) // 60
