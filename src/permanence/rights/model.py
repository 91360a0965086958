"""Rights requests, their rectification history and download links (the erasure journal's
table is the journal's own, ``backup.model``: re-exported here, its old import path).

Nothing here holds personal data in clear. What the requester gave (identifiers, changes asked
for, a supplementary statement) is sealed; the request row itself keeps codes, dates and the
pseudonymous subject id, and outlives an erasure as the record of how the request was handled.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import (
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

# The erasure journal's table moved to the journal (ADR 0038); its old import path is kept.
from permanence.backup.model import ErasureJournal as ErasureJournal
from permanence.backup.model import JournalKind as JournalKind
from permanence.db import Base, UTCDateTime, new_id, utcnow


class Kind(enum.StrEnum):
    ACCESS = "access"
    RECTIFICATION = "rectification"
    ERASURE = "erasure"
    RESTRICTION = "restriction"
    OBJECTION = "objection"
    PORTABILITY = "portability"


class Source(enum.StrEnum):
    CLIENT = "client"  # the controller's user, in the portal
    STAFF = "staff"  # the provider's staff, when a caller asks on the phone (Art. 28(3)(e))
    OPENDSR = "opendsr"  # the controller's own systems
    CALLER = "caller"  # the data subject, on the public page /droits/{account}


class State(enum.StrEnum):
    RECEIVED = "received"
    VERIFYING = "verifying"  # a code was sent, or a callback is to be made
    WAITING_INFO = "waiting_info"  # Art. 12(6): more information asked of the requester
    VERIFIED = "verified"
    COMPLETED = "completed"
    REFUSED = "refused"
    CANCELLED = "cancelled"


OPEN_STATES = frozenset({State.RECEIVED, State.VERIFYING, State.WAITING_INFO, State.VERIFIED})
CLOSED_STATES = frozenset({State.COMPLETED, State.REFUSED, State.CANCELLED})


class RightsRequest(Base):
    __tablename__ = "rights_requests"
    __table_args__ = (
        Index("ix_rights_requests_account_due", "account_id", "state", "due_at"),
        Index("ix_rights_requests_subject", "account_id", "subject_id"),
        UniqueConstraint("account_id", "external_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # The OpenDSR subject_request_id chosen by the controller's system (unique per account).
    external_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=State.RECEIVED.value)
    # No foreign key: the request outlives the erasure of its subject (pseudonymous id).
    subject_id: Mapped[uuid.UUID | None]
    match_count: Mapped[int] = mapped_column(default=0)
    # The identifiers as given, what to rectify, the statement: sealed with the request key,
    # wiped once the request is closed by an erasure.
    requester_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    details_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    first_due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    extended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    extension_reason: Mapped[str | None] = mapped_column(String(32))
    waiting_reason: Mapped[str | None] = mapped_column(String(32))
    waiting_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    verification_method: Mapped[str | None] = mapped_column(String(16))
    code_hash: Mapped[str | None] = mapped_column(String(64))
    code_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    verification_attempts: Mapped[int] = mapped_column(default=0)
    verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    possibly_excessive: Mapped[bool] = mapped_column(default=False)
    scope: Mapped[str | None] = mapped_column(String(64))  # objection: "recording" or a purpose
    decided_by: Mapped[uuid.UUID | None]
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    refusal_reason: Mapped[str | None] = mapped_column(String(32))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    restriction_lifted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Counts of what the execution did (JSON of codes and numbers) and, for an erasure, the
    # signed certificate (no personal data in either).
    outcome: Mapped[str | None] = mapped_column(Text)
    certificate: Mapped[str | None] = mapped_column(Text)
    # OpenDSR: where to POST status changes (https URLs given by the controller's system).
    callback_urls: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None]
    # How the request reached us (phone, email, letter, in_person, web, api): for the register.
    received_via: Mapped[str | None] = mapped_column(String(16))


class Rectification(Base):
    """One rectified value (Art. 16): before and after, sealed under the subject's key, with
    the subject's supplementary statement. Erased with the subject."""

    __tablename__ = "rectifications"
    __table_args__ = (Index("ix_rectifications_caller", "account_id", "caller_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    caller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("callers.id", ondelete="CASCADE"))
    request_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("rights_requests.id", ondelete="SET NULL")
    )
    record_kind: Mapped[str] = mapped_column(String(16))  # caller | message | appointment
    record_id: Mapped[uuid.UUID]
    changed_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    by: Mapped[uuid.UUID | None]


class Download(Base):
    """An expiring, single-use link to a file made for a request (access package, portable
    data). Only the token's hash is stored; the file is encrypted under the subject's key and
    deleted once downloaded or expired."""

    __tablename__ = "rights_downloads"
    __table_args__ = (Index("ix_rights_downloads_expiry", "account_id", "expires_at"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(default=new_id, unique=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("rights_requests.id", ondelete="CASCADE")
    )
    subject_id: Mapped[uuid.UUID | None]
    purpose: Mapped[str] = mapped_column(String(32))  # access_package | portability
    filename: Mapped[str] = mapped_column(String(100))
    storage_key: Mapped[str] = mapped_column(String(200))
    size_bytes: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CallerCode(Base):
    """A one-time code asked for on the public page (/droits/{account}). The row exists
    whether or not the caller is known (no enumeration): an unknown caller's row has no
    subject and no code can match it. Only hashes are stored; single-use; expires."""

    __tablename__ = "rights_caller_codes"
    __table_args__ = (Index("ix_rights_caller_codes_expiry", "account_id", "expires_at"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str | None] = mapped_column(String(64))
    subject_id: Mapped[uuid.UUID | None]
    channel: Mapped[str | None] = mapped_column(String(8))  # email | sms; None: nothing sent
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    request_id: Mapped[uuid.UUID | None]


class CallerThrottle(Base):
    """Codes asked for on the public page per client address and per identifier (keyed
    hashes, never the values), counted per fixed window."""

    __tablename__ = "rights_caller_throttle"
    __table_args__ = ({"info": {"shared_registry": True}},)

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LetterKind(enum.StrEnum):
    RECEIVED = "received"  # the acknowledgement at intake
    EXTENSION = "extension"  # Art. 12(3): two further months, with the reasons
    WAITING = "waiting"  # Art. 12(6): more information needed
    REFUSAL = "refusal"  # Art. 12(4)
    COMPLETED = "completed"
    RESTRICTION_LIFT = "restriction_lift"  # Art. 18(3)
    OTHER = "other"


class RightsLetter(Base):
    """A letter sent to the requester, and how it went: the DPO sees each one on the request's
    page. The text is sealed (it may carry a download link or the controller's explanation);
    the row keeps only codes and dates. ``status``: "sent" (handed to the SMTP server or the
    SMS gateway), "failed" (the server refused or could not be reached: send it again or by
    post), "to_post" (no e-mail or phone to send it to: the client user posts it),
    "callback" (an OpenDSR request: answered to the controller's system)."""

    __tablename__ = "rights_letters"
    __table_args__ = (Index("ix_rights_letters_request", "account_id", "request_id", "sent_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("rights_requests.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(24))
    channel: Mapped[str] = mapped_column(String(16))  # email | sms | letter | callback
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(64))  # the failure's class, no content
    text_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
