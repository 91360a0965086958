from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class Message(Base):
    """A message taken for the client under one purpose of one mandate version.

    ``payload_sealed`` holds the purpose's fields as sealed JSON: only fields the purpose
    declares ever reach it (validated against the mandate before sealing).
    """

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_caller", "caller_id"),
        # Deleting a call (retention) sets call_id to NULL here: without an index every
        # deleted call would scan the table.
        Index("ix_messages_call", "call_id"),
        # Statistics: messages taken in a period and those not yet acknowledged, index-only;
        # and every list of an account's messages by date (inbox, console, export, retention:
        # it replaced ix_messages_account_created, its prefix, in migration 0099).
        Index("ix_messages_account_created_ack", "account_id", "created_at", "acknowledged_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    caller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("callers.id", ondelete="CASCADE"))
    call_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    mandate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mandates.id"))
    purpose: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="new")
    urgent: Mapped[bool] = mapped_column(default=False)
    payload_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[uuid.UUID | None]
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The voicemail this message was written from (the inbox's "turn into a message").
    voicemail_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("recordings.id", ondelete="SET NULL"), index=True
    )


class Appointment(Base):
    """A slot booked in the client's agenda. Times are in clear (the agenda needs them);
    who and why are sealed."""

    __tablename__ = "appointments"
    __table_args__ = (
        Index("ix_appointments_account_start", "account_id", "starts_at"),
        Index("ix_appointments_caller", "caller_id"),
        Index("ix_appointments_call", "call_id"),
        # Statistics count bookings by when they were made (docs/statistics.md).
        Index("ix_appointments_account_created", "account_id", "created_at", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    caller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("callers.id", ondelete="CASCADE"))
    call_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    mandate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mandates.id"))
    purpose: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="booked")
    payload_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[uuid.UUID | None]
