from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String
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


class AccountHourlyStats(Base):
    """Per account and UTC hour: the sums every account figure is made of (docs/statistics.md),
    kept equal to what a scan of the hour's calls, messages, appointments and recordings gives
    (``stats.aggregates``: recomputed for the hours a transaction touched, at its flush).

    Counts and sums only, no identifier of a caller or a call. ``day`` and ``hour_of_day`` are
    the Paris day and hour of the UTC hour (Paris is a whole number of hours from UTC), so a
    period's days and hours of the day are GROUP BYs over at most 24 rows a day."""

    __tablename__ = "account_hourly_stats"
    __table_args__ = (Index("ix_account_hourly_stats_day", "account_id", "day"),)

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date)
    hour_of_day: Mapped[int] = mapped_column(Integer)
    # calls (by started_at) and their outcomes
    received: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    abandoned: Mapped[int] = mapped_column(Integer, default=0)
    voicemail: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    expired: Mapped[int] = mapped_column(Integer, default=0)
    transferred: Mapped[int] = mapped_column(Integer, default=0)
    answer_s: Mapped[float] = mapped_column(Float, default=0.0)
    talk_s: Mapped[float] = mapped_column(Float, default=0.0)
    talked: Mapped[int] = mapped_column(Integer, default=0)
    waited_s: Mapped[float] = mapped_column(Float, default=0.0)
    waited: Mapped[int] = mapped_column(Integer, default=0)
    # answer-time histogram (stats.sql.ANSWER_EDGES) and abandoned-after (ABANDON_EDGES)
    answer_le10: Mapped[int] = mapped_column(Integer, default=0)
    answer_le20: Mapped[int] = mapped_column(Integer, default=0)
    answer_le30: Mapped[int] = mapped_column(Integer, default=0)
    answer_le60: Mapped[int] = mapped_column(Integer, default=0)
    answer_gt60: Mapped[int] = mapped_column(Integer, default=0)
    abandon_le10: Mapped[int] = mapped_column(Integer, default=0)
    abandon_le30: Mapped[int] = mapped_column(Integer, default=0)
    abandon_le60: Mapped[int] = mapped_column(Integer, default=0)
    abandon_gt60: Mapped[int] = mapped_column(Integer, default=0)
    # calls out of the mandate's hours (routing.hours.AFTER_HOURS, in that order)
    after_hours_voicemail: Mapped[int] = mapped_column(Integer, default=0)
    after_hours_forward: Mapped[int] = mapped_column(Integer, default=0)
    after_hours_answer: Mapped[int] = mapped_column(Integer, default=0)
    # call-backs placed by operators (calls.routing 'outbound', routing.callbacks)
    outbound: Mapped[int] = mapped_column(Integer, default=0)
    # messages, appointments, recordings (by created_at)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    messages_unacknowledged: Mapped[int] = mapped_column(Integer, default=0)
    appointments: Mapped[int] = mapped_column(Integer, default=0)
    appointments_cancelled: Mapped[int] = mapped_column(Integer, default=0)
    recordings: Mapped[int] = mapped_column(Integer, default=0)
    recording_s: Mapped[int] = mapped_column(Integer, default=0)


class AccountAnswerSeconds(Base):
    """Per account and Paris day: how many answered calls were answered after each whole
    number of seconds — what the 90th percentile of answer time is read from."""

    __tablename__ = "account_answer_seconds"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    seconds: Mapped[int] = mapped_column(Integer, primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)
