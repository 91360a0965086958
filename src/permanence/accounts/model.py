from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import Enum, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class AccountKind(enum.StrEnum):
    MEDICAL = "medical"
    LEGAL = "legal"
    TRADES = "trades"
    SME = "sme"
    SUPPORT = "support"
    OTHER = "other"


class AccountStatus(enum.StrEnum):
    ACTIVE = "active"
    OFFBOARDED = "offboarded"


class Account(Base):
    """A client business: the controller on whose behalf calls are answered.

    The registry of tenants itself, readable by staff across accounts; what an account owns
    lives in tables with an ``account_id`` column under row-level security.
    """

    __tablename__ = "accounts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[AccountKind] = mapped_column(
        Enum(
            AccountKind,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    status: Mapped[AccountStatus] = mapped_column(
        Enum(
            AccountStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        ),
        default=AccountStatus.ACTIVE,
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Did(Base):
    """A number callers dial, forwarded to the service; it selects the account."""

    __tablename__ = "dids"
    # Routing must find the account before any account is known: on PostgreSQL a routing
    # transaction may read this table (see schema.enable_tenant_isolation); writes stay
    # confined to the account.

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    e164: Mapped[str] = mapped_column(String(20), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MandateVersion(Base):
    """One version of an account's documented instructions (Art. 28(3)(a)), as validated data.

    Never updated: a change is a new version. Records keep the version they were taken under.
    """

    __tablename__ = "mandates"
    __table_args__ = (UniqueConstraint("account_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int]
    document: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    notice_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[uuid.UUID | None]
