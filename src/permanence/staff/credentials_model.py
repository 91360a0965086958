"""Credentials beside the password: single-use e-mailed links and MFA recovery codes."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class AuthToken(Base):
    """A single-use, expiring link sent by e-mail: ``reset`` (choose a new password) or
    ``unlock`` (lift the lock after repeated failed sign-ins). Only the SHA-256 of the token
    is stored; ``used_at`` is set when it is spent."""

    __tablename__ = "auth_tokens"
    __table_args__ = ({"info": {"shared_registry": True}},)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class RecoveryCode(Base):
    """One single-use MFA recovery code, stored as an argon2id hash; shown once."""

    __tablename__ = "recovery_codes"
    __table_args__ = ({"info": {"shared_registry": True}},)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
