from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class Consent(Base):
    """Proof of consent: who (pseudonymous), for which purpose, which exact wording version,
    by which channel, when, taken by whom, on which call — and its withdrawal."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_caller_purpose", "caller_id", "purpose"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    caller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("callers.id", ondelete="CASCADE"))
    call_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    mandate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mandates.id"))
    purpose: Mapped[str] = mapped_column(String(64))
    wording_version: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    given_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    operator_id: Mapped[uuid.UUID | None]
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    withdrawn_channel: Mapped[str | None] = mapped_column(String(16))
