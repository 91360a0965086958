"""The erasure journal's table (ADR 0008): written by the rights' erasure and the contracts'
off-boarding, read and replayed by a restore (``backup.journal``, ``backup.replay``). It lives
here, with the journal, below the features that write it (docs/architecture.md, ADR 0038)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class JournalKind(enum.StrEnum):
    SUBJECT = "subject"  # one data subject erased (a rights request)
    ACCOUNT = "account"  # the whole account off-boarded (end of contract, Art. 28(3)(g))


class ErasureJournal(Base):
    """Append-only journal of erasures (pseudonymous): a restored backup replays it so that
    an erased subject stays erased, and an off-boarded account stays off-boarded. The
    application role may only insert and read it."""

    __tablename__ = "erasure_journal"
    __table_args__ = (
        Index("ix_erasure_journal_account", "account_id", "erased_at"),
        # A subject erasure names its subject; an off-boarding names none.
        CheckConstraint(
            "(kind = 'subject' AND subject_id IS NOT NULL) "
            "OR (kind = 'account' AND subject_id IS NULL)",
            name="kind_subject",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(
        String(16), default=JournalKind.SUBJECT.value, server_default=JournalKind.SUBJECT.value
    )
    subject_id: Mapped[uuid.UUID | None]
    request_id: Mapped[uuid.UUID | None]
    erased_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
