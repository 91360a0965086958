"""Per-operator statistics: the daily aggregates of ``operator_daily_stats`` (staff data,
kept no longer than the retention period; docs/statistics.md)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from permanence.calls.presence_model import OperatorDailyStats
from permanence.context import Role
from permanence.db import ctx_of, utcnow
from permanence.errors import NotFound, PermissionDenied
from permanence.render import PARIS
from permanence.staff.model import User
from permanence.stats.account import _round
from permanence.stats.periods import Period


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
