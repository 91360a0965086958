"""The breach register.

A breach is the provider's own record (one incident may touch several client accounts), so
``breaches`` and ``breach_supplements`` have no account: they hold no caller data, only codes,
counts and the DPO's description (screened for personal data on the way in). What a breach
means for one account — its counts, its callers, the notices sent to it — lives in
account-owned tables under row-level security.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class Breach(Base):
    __tablename__ = "breaches"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    # The moment the provider became aware: every clock runs from here (hours, not days).
    aware_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    occurred_from: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    occurred_to: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Art. 33(3) contents. Free text written by the DPO, screened for personal data.
    nature: Mapped[str] = mapped_column(Text, default="")
    data_categories: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of codes
    subject_categories: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of codes
    approx_subjects: Mapped[int | None] = mapped_column(Integer)
    approx_records: Mapped[int | None] = mapped_column(Integer)
    contact_point: Mapped[str] = mapped_column(Text, default="")
    consequences: Mapped[str] = mapped_column(Text, default="")
    measures: Mapped[str] = mapped_column(Text, default="")
    # Scope "operator X between T1 and T2", when the breach is a compromised staff account.
    scope_actor_id: Mapped[uuid.UUID | None]
    scope_from: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    scope_to: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # pending | notify | not_notified (with a reason code). A breach that affects a client's
    # data is always notified to it (Art. 33(2)): ``not_notified`` documents an incident that
    # turned out to concern no personal data of any client.
    decision: Mapped[str] = mapped_column(String(16), default="pending")
    not_notified_reason: Mapped[str | None] = mapped_column(String(32))
    # Art. 34 is each controller's decision (``BreachAccount.subjects_decision``); these two
    # columns of the provider-wide decision are kept for the rows written before, never set.
    subjects_decision: Mapped[str] = mapped_column(String(16), default="pending")
    subjects_reason: Mapped[str | None] = mapped_column(String(32))
    # Art. 34(3)(a): the data that left was encrypted and the key stayed safe, so it was
    # unintelligible to whoever had it. Never true for a compromised staff account (it saw
    # the data decrypted). Only then may a controller invoke the "encrypted" exception.
    unintelligible: Mapped[bool] = mapped_column(default=False, server_default=false())
    phase: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[uuid.UUID | None]
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class BreachSupplement(Base):
    """Art. 33(4): information given in phases. Each supplement opens the next phase."""

    __tablename__ = "breach_supplements"
    __table_args__ = (UniqueConstraint("breach_id", "phase"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    breach_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("breaches.id", ondelete="CASCADE"))
    phase: Mapped[int] = mapped_column(Integer)
    changed: Mapped[str] = mapped_column(Text)  # JSON list of the field names that changed
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[uuid.UUID | None]


class BreachAccount(Base):
    """A client account (controller) affected by a breach, with its counts."""

    __tablename__ = "breach_accounts"
    __table_args__ = (UniqueConstraint("breach_id", "account_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    breach_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("breaches.id", ondelete="CASCADE"))
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    subjects: Mapped[int] = mapped_column(Integer, default=0)
    records: Mapped[int] = mapped_column(Integer, default=0)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # First notice to the controller: the controller's own 72 hours run from here.
    notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Art. 34: the controller's own decision, recorded by its client user from the portal:
    # pending | communicate | not_required (with a reason code), never by the provider.
    subjects_decision: Mapped[str] = mapped_column(
        String(16), default="pending", server_default="pending"
    )
    subjects_reason: Mapped[str | None] = mapped_column(String(32))
    subjects_decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    subjects_decided_by: Mapped[uuid.UUID | None]


class BreachSubject(Base):
    """A caller whose data the breach reached (pseudonymous id; found in the audit log).

    ``reads`` counts every action of the scoped account on this caller's data in the window
    (reads, writes, calls handled), not only reads: the column kept its first name."""

    __tablename__ = "breach_subjects"
    __table_args__ = (
        UniqueConstraint("breach_id", "subject_id"),
        Index("ix_breach_subjects_account", "account_id", "breach_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    breach_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("breaches.id", ondelete="CASCADE"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    subject_id: Mapped[uuid.UUID]
    reads: Mapped[int] = mapped_column(Integer, default=0)
    first_read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class BreachNotice(Base):
    """A notification sent to a controller (by e-mail link and on its portal), per phase."""

    __tablename__ = "breach_notices"
    __table_args__ = (
        UniqueConstraint("breach_id", "account_id", "phase"),
        Index("ix_breach_notices_account", "account_id", "sent_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    breach_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("breaches.id", ondelete="CASCADE"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    phase: Mapped[int] = mapped_column(Integer)
    subject_line: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)  # French text; counts and codes, no personal data
    emailed_to: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_by: Mapped[uuid.UUID | None]
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
