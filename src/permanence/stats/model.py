from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Date, Float, ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime


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
    # calls out of the mandate's hours (calls.hours.AFTER_HOURS, in that order)
    after_hours_voicemail: Mapped[int] = mapped_column(Integer, default=0)
    after_hours_forward: Mapped[int] = mapped_column(Integer, default=0)
    after_hours_answer: Mapped[int] = mapped_column(Integer, default=0)
    # call-backs placed by operators (calls.routing 'outbound', routing.callbacks)
    outbound: Mapped[int] = mapped_column(Integer, default=0)
    # callers who chose a call-back in the queue (outcome callback_request; migration 0093)
    callback_request: Mapped[int] = mapped_column(Integer, default=0)
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
