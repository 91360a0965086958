from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class Call(Base):
    """One call taken for an account. The caller's number is sealed; the call log itself
    (times, status, operator) is what statistics and the CDR are made of."""

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_account_started", "account_id", "started_at"),
        Index("ix_calls_caller", "caller_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    caller_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("callers.id", ondelete="CASCADE")
    )
    did_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("dids.id", ondelete="SET NULL"))
    mandate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mandates.id"))
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    status: Mapped[str] = mapped_column(String(16), default="ringing")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    operator_id: Mapped[uuid.UUID | None]
    notice_version: Mapped[str | None] = mapped_column(String(64))
    notice_read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    from_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
