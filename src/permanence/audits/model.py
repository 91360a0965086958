"""An audit of the service or of a sub-processor, and its follow-up actions.

Provider-level governance records (no client account): outside row-level security, like the
sub-processor registry. Free text is screened for personal data when recorded.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Date, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class PracticeAudit(Base):
    __tablename__ = "practice_audits"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # None: the service itself; else the sub-processor audited.
    subprocessor_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("subprocessors.id", ondelete="RESTRICT"), index=True
    )
    performed_on: Mapped[dt.date] = mapped_column(Date)
    scope: Mapped[str] = mapped_column(Text)
    findings: Mapped[str] = mapped_column(Text)
    next_due_on: Mapped[dt.date] = mapped_column(Date)
    recorded_by: Mapped[uuid.UUID | None]
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditAction(Base):
    __tablename__ = "practice_audit_actions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    audit_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("practice_audits.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(500))
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    due_on: Mapped[dt.date] = mapped_column(Date)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    done_by: Mapped[uuid.UUID | None]
