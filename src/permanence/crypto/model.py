"""Key tables. Wrapped keys only: nothing here opens without the master key."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, LargeBinary, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class AccountKey(Base):
    """One version of an account's key-encryption key, with the account's index root key.

    The index root key stays the same across KEK versions (re-wrapped with each), so that a
    rotation never forces the blind indexes to be recomputed.
    """

    __tablename__ = "account_keys"
    __table_args__ = (UniqueConstraint("account_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int]
    wrapped_kek: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_index_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SubjectKey(Base):
    """A data subject's data key, wrapped by the account's KEK, then by the erasure-epoch key
    ``epoch`` (0: not yet, a row from before revision 0088). Deleting it is erasure."""

    __tablename__ = "subject_keys"
    # A rotation reads an account's keys still under an older epoch (crypto/epochlayer.py).
    __table_args__ = (Index("ix_subject_keys_account_id_epoch", "account_id", "epoch"),)

    subject_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    kek_version: Mapped[int]
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    epoch: Mapped[int] = mapped_column(default=0, server_default="0")


class KeyEpoch(Base):
    """One erasure epoch (ADR 0029). Its key is never here: it lives in the epoch file beside
    the master key. The current epoch is the one not retired; new subject keys are wrapped
    under it. A rotation retires it, re-wraps every subject key under a new one, then
    destroys the old key in the file (``destroyed_at``)."""

    __tablename__ = "key_epochs"

    epoch: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    destroyed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
