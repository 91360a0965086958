from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class Recording(Base):
    """A call recording (or voicemail) kept here, encrypted under the caller's data key.

    The audio itself is a file in the recordings storage (``storage_key``), written with
    ``crypto.stream`` and bound to this row's id; the provider's copy is deleted once it is
    stored here. Erasing the caller destroys the key, so the file becomes unreadable too.
    """

    __tablename__ = "recordings"
    __table_args__ = (
        Index("ix_recordings_account_created", "account_id", "created_at"),
        Index("ix_recordings_call", "call_id"),
        # A data subject's recordings (rights requests: lookup, access, erasure).
        Index("ix_recordings_caller", "caller_id"),
        UniqueConstraint("account_id", "provider_sid"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    caller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("callers.id", ondelete="CASCADE"))
    mandate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mandates.id"))
    kind: Mapped[str] = mapped_column(String(16), default="call")  # call | voicemail
    provider_sid: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(64), default="audio/wav")
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_s: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    provider_deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The voicemail inbox (kind "voicemail"): new until someone of the account or the desk
    # marks it treated (who and when kept).
    treated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    treated_by: Mapped[uuid.UUID | None]


class RecordingDownload(Base):
    """A recording the provider announced, to fetch, store and delete there (a job).

    The recording callback only writes this row and answers the provider; the worker
    (``recordings.downloads.run_due``) fetches with retries and backoff. ``url`` and
    ``provider_sid`` are the provider's identifiers, not personal data. ``state``: pending
    (to fetch), stored (ours is committed), discarded (objected: never fetched), absent (the
    provider made none), failed (gave up fetching). ``provider_deleted_at`` stays empty
    while the provider still holds a copy: the compliance check looks for those.
    """

    __tablename__ = "recording_downloads"
    __table_args__ = (
        Index("ix_recording_downloads_due", "account_id", "state", "next_attempt_at"),
        Index("ix_recording_downloads_at_provider", "provider_deleted_at", "created_at"),
        Index("ix_recording_downloads_call", "call_id"),
        UniqueConstraint("account_id", "provider_sid"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # call | voicemail
    provider_sid: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(500))
    duration_s: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(64))
    recording_id: Mapped[uuid.UUID | None]
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    provider_deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
