from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Enum, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from permanence.context import Role
from permanence.db import Base, UTCDateTime, new_id, utcnow


class User(Base):
    """A person who signs in: provider staff (operator, supervisor, DPO, administrator) or a
    client user bound to one account. The TOTP secret is sealed under a key derived from
    the master key. Users are the provider's own staff data, not tenant data: the table is
    outside row-level security (sign-in must find a user before any account is known)."""

    __tablename__ = "users"
    __table_args__ = ({"info": {"shared_registry": True}},)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])
    )
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    password_hash: Mapped[str] = mapped_column(String(200))
    totp_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Set once the first code is verified; the last accepted time step refuses replays.
    mfa_enabled: Mapped[bool] = mapped_column(default=False)
    totp_last_step: Mapped[int | None]
    password_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrainingRecord(Base):
    """A completed data-protection course, valid until ``expires_at``."""

    __tablename__ = "staff_training"
    __table_args__ = ({"info": {"shared_registry": True}},)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    course: Mapped[str] = mapped_column(String(64))
    completed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    recorded_by: Mapped[uuid.UUID | None]
    # When the staff member was reminded that this completion expires (once per completion).
    reminded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Who gave the session and how long it lasted (as the DPO recorded it), and the signed
    # attendance sheet or certificate, shared by everyone recorded for the same session.
    trainer: Mapped[str | None] = mapped_column(String(200))
    duration_minutes: Mapped[int | None]
    attestation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("training_attestations.id", ondelete="SET NULL"), index=True
    )


class TrainingAttestation(Base):
    """The attestation of a training session (PDF, PNG or JPEG), encrypted on disk under a key
    derived from the master key (``staff.attestations``); the row holds no content."""

    __tablename__ = "training_attestations"
    __table_args__ = ({"info": {"shared_registry": True}},)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    storage_key: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by: Mapped[uuid.UUID | None]


class TrainingCourse(Base):
    """The catalogue of courses. A required course gates access to personal data."""

    __tablename__ = "training_courses"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    title_fr: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200), default="")
    validity_days: Mapped[int] = mapped_column(default=365)
    required: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConfidentialityUndertaking(Base):
    """The staff member's signed confidentiality undertaking (Art. 28(3)(b)), by version."""

    __tablename__ = "staff_confidentiality"
    __table_args__ = ({"info": {"shared_registry": True}},)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[str] = mapped_column(String(32))
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class WebSession(Base):
    """A signed-in browser or client. Only the SHA-256 of the token is stored."""

    __tablename__ = "web_sessions"
    __table_args__ = ({"info": {"shared_registry": True}},)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    reauth_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    csrf_token: Mapped[str] = mapped_column(String(64))


class AuthFailure(Base):
    """Failed sign-ins per key (an e-mail or an address, hashed), for throttling."""

    __tablename__ = "auth_failures"
    __table_args__ = ({"info": {"shared_registry": True}},)

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
    first_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set on an e-mail's key after PERMANENCE_SIGNIN_LOCK_THRESHOLD failures: sign-in is
    # refused until the e-mailed link or an administrator lifts it (docs/adr/0014).
    locked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """A scoped key for a client's integrations, bound to one account. The secret is stored
    as SHA-256 only (it is long and random, so a slow hash adds nothing). Under row-level
    security; a key is resolved before its account is known, through a policy that reads
    only the key the request names (migration 0074)."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[uuid.UUID | None] = mapped_column(index=True)  # revoked with its user
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
