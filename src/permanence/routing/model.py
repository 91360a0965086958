"""Operators' lines and the dispatcher's view of the provider queue.

Both tables are the provider's own switching data, outside row-level security like
``operator_presence``: the dispatcher must find the oldest highest-priority waiting call of
every account in one indexed query (ADR 0023). They hold no personal data — no number, no
name: a call id, an account id, times and the operator offered.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import JSON, ForeignKey, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, utcnow

# queued: waiting in the provider's queue; offered: a call to one operator's device is
# ringing (or being placed); connected: that operator took the caller; done: the caller left
# the queue (answered and over, hung up, or sent to voicemail).
ENTRY_STATES = ("queued", "offered", "connected", "done")


class OperatorLine(Base):
    """Where a staff member who takes calls is rung: ``client:IDENTITY``, ``sip:URI`` or an
    E.164 number (``routing.devices``)."""

    __tablename__ = "operator_lines"
    __table_args__ = ({"info": {"shared_registry": True}},)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    device: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class QueueEntry(Base):
    """One call waiting in (or leaving) the provider's queue."""

    __tablename__ = "call_queue"
    __table_args__ = (
        Index("ix_call_queue_waiting", "state", "priority", "enqueued_at"),
        Index("ix_call_queue_operator", "operator_id", "state"),
        # Call-backs asked for (``requested``) and offered (``offered``), oldest first.
        Index("ix_call_queue_result", "result", "left_at"),
        {"info": {"shared_registry": True}},
    )

    call_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # The caller's leg at the provider (the <Queue> url names the caller it dequeued).
    caller_sid: Mapped[str] = mapped_column(String(64), unique=True)
    queue_name: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    enqueued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    deadline_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    operator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # The operator's leg placed by the REST API, and what the provider said of it.
    offer_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    offer_status: Mapped[str | None] = mapped_column(String(16))
    offered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    connected_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    left_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Why it left: bridged, hangup, overflow (voicemail), error.
    result: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Operators already offered this call who did not take it (ids as strings).
    tried: Mapped[list[str]] = mapped_column(JSON, default=list)
    # A warm transfer under way: the call placed to the mandate's contact (the operator
    # speaks to them while the caller holds) and that contact's index in the mandate.
    consult_sid: Mapped[str | None] = mapped_column(String(64))
    consult_target: Mapped[int | None] = mapped_column(SmallInteger)
