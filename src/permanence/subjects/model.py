from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class Caller(Base):
    """A data subject. Identifiers are sealed under the subject's own key; the ``*_bidx``
    columns are truncated blind indexes that find candidates without decrypting anything."""

    __tablename__ = "callers"
    __table_args__ = (
        Index("ix_callers_account_phone", "account_id", "phone_bidx"),
        Index("ix_callers_account_email", "account_id", "email_bidx"),
        Index("ix_callers_account_name", "account_id", "name_bidx"),
        Index("ix_callers_account_email_sha256", "account_id", "email_sha256_bidx"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    phone_bidx: Mapped[int | None] = mapped_column(Integer)
    email_bidx: Mapped[int | None] = mapped_column(Integer)
    name_bidx: Mapped[int | None] = mapped_column(Integer)
    # The blind index of the SHA-256 (hex) of the normalised e-mail: OpenDSR's hashed identity.
    email_sha256_bidx: Mapped[int | None] = mapped_column(Integer)
    phone_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    name_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Art. 18: kept, but hidden from operators and not delivered, while restricted.
    restricted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Art. 21: the caller objected to being recorded; later calls are not recorded.
    recording_objected_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
