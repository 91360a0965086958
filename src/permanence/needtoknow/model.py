"""Operators assigned to the client accounts they serve, and break-glass accesses.

Both are account-owned (row-level security). An assignment ends rather than disappears: the
periodic access review reads who could open the account's data, and when.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class OperatorAssignment(Base):
    __tablename__ = "operator_assignments"
    __table_args__ = (Index("ix_operator_assignments_account_user", "account_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    assigned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    assigned_by: Mapped[uuid.UUID | None]
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[uuid.UUID | None]


class BreakGlassAccess(Base):
    """An operator opened a caller's medical messages outside a call with them, giving a
    reason (kept here, never in the audit log or the logs: it may name the patient)."""

    __tablename__ = "break_glass_accesses"
    __table_args__ = (
        Index("ix_break_glass_accesses_account_user_caller", "account_id", "user_id", "caller_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    caller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("callers.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
