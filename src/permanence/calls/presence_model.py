"""Operators' presence (free, on a call, wrapping up, on a break) and their daily aggregates:
the rows ``calls.presence`` keeps. Moved from ``stats.model`` (ADR 0037): answering and
completing a call move the operator, so presence sits with the calls, below routing and the
statistics that read it."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, utcnow

# What a signed-in operator is doing. "offline" is the operator signing off the board.
PRESENCE_STATES = ("free", "on_call", "wrap_up", "break", "offline")
# States an operator sets by hand; on_call and wrap_up follow the calls they answer.
MANUAL_STATES = frozenset({"free", "break", "offline"})


class OperatorPresence(Base):
    """An operator's current state and since when: one row per staff member, overwritten on
    each change (no history is kept: the board shows the present, not a trail).

    Provider staff data, not a client's: outside row-level security, like ``users``."""

    __tablename__ = "operator_presence"
    __table_args__ = ({"info": {"shared_registry": True}},)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16), default="free")
    since: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The call the operator answered last: wrap-up time is counted for it.
    call_id: Mapped[uuid.UUID | None]


class OperatorDailyStats(Base):
    """Per operator and per day (Paris time): calls handled, talk and wrap-up time.

    Aggregates only — which calls, for whom, is not here — and kept no longer than
    ``PERMANENCE_STAFF_STATS_RETENTION_DAYS`` (``stats.service.purge_staff_stats``): the CNIL
    forbids permanent monitoring of employees. Provider staff data, outside row-level
    security (it spans every account the operator answered for)."""

    __tablename__ = "operator_daily_stats"
    __table_args__ = (
        Index("ix_operator_daily_stats_day", "day"),
        {"info": {"shared_registry": True}},
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    calls_handled: Mapped[int] = mapped_column(Integer, default=0)
    talk_s: Mapped[int] = mapped_column(Integer, default=0)
    wrap_ups: Mapped[int] = mapped_column(Integer, default=0)
    wrap_up_s: Mapped[int] = mapped_column(Integer, default=0)
