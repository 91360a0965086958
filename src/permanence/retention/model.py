from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class LegalHold(Base):
    """A legal hold pauses retention (Art. 17(3)(e): legal claims) for a whole account, one
    caller, or one record (``record_kind`` + ``record_id``). The reason is a code; released
    holds are kept (with ``released_at``) as the record of why data outlived its period."""

    __tablename__ = "legal_holds"
    __table_args__ = (Index("ix_legal_holds_account_active", "account_id", "released_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    caller_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("callers.id", ondelete="CASCADE")
    )
    record_kind: Mapped[str | None] = mapped_column(String(32))
    record_id: Mapped[uuid.UUID | None]
    reason: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[uuid.UUID | None]
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
