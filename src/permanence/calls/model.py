from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow

# Provider call statuses (Twilio's vocabulary, shared by SignalWire and Telnyx TeXML).
TERMINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
# Our own status for a call whose final status never came (calls.outcome.expire): not the
# provider's vocabulary, and not terminal for it (a late, real final status still applies).
EXPIRED_STATUS = "expired"

# recording_state: "off" (policy says no), "offered" (notice said, caller may still object),
# "objected" (caller pressed the key or the operator stopped it: the audio is discarded),
# "recording" (the provider records), "stored" (encrypted here, deleted at the provider),
# "deleted" (retention or an erasure removed the audio).
RECORDING_STATES = ("off", "offered", "objected", "recording", "stored", "deleted")


class Call(Base):
    """One call taken for an account. The caller's number is sealed; the call log itself
    (times, status, operator) is what statistics and the CDR are made of."""

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_account_started", "account_id", "started_at"),
        Index("ix_calls_caller", "caller_id"),
        # Calls without a final status, oldest first (telephony.stale): a handful per account.
        Index("ix_calls_open", "account_id", "status", "started_at"),
        # Covers every column the statistics read, so a year of an account's calls is an
        # index-only range scan (docs/statistics.md); calls are written at human speed.
        Index(
            "ix_calls_account_stats",
            "account_id",
            "started_at",
            "status",
            "outcome",
            "answered_at",
            "ended_at",
            "talk_s",
            "routing",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    caller_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("callers.id", ondelete="CASCADE")
    )
    did_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("dids.id", ondelete="SET NULL"))
    mandate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mandates.id"))
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    status: Mapped[str] = mapped_column(String(16), default="ringing")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    operator_id: Mapped[uuid.UUID | None]
    notice_version: Mapped[str | None] = mapped_column(String(64))
    notice_read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    from_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    provider: Mapped[str | None] = mapped_column(String(16))
    # Whole call and talk time in seconds, as the provider reports them (the CDR).
    duration_s: Mapped[int | None] = mapped_column(Integer)
    talk_s: Mapped[int | None] = mapped_column(Integer)
    ended_reason: Mapped[str | None] = mapped_column(String(32))
    # The caller left audio on voicemail (a fact; the outcome is derived from the facts).
    voicemail: Mapped[bool] = mapped_column(default=False)
    # The terminal outcome (calls.outcome.OUTCOMES), None while the call goes on.
    outcome: Mapped[str | None] = mapped_column(String(16))
    recording_state: Mapped[str] = mapped_column(String(16), default="off")
    # The second-layer notice sent to the caller by SMS: when, and under which mandate version
    # (the delivery ledger row, keyed by the call's id, holds the attempts).
    notice_sms_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    notice_sms_version: Mapped[int | None] = mapped_column(Integer)
    # The language the call is conducted in (the caller's choice at the start): "fr" or "en".
    language: Mapped[str] = mapped_column(String(8), default="fr", server_default="fr")
    # The arrival decision (calls.hours): in_hours, after_hours_voicemail,
    # after_hours_forward or after_hours_answer; empty for calls taken before it existed.
    routing: Mapped[str | None] = mapped_column(String(24))
    # When forwarded out of hours: which on_call contact of the call's mandate version.
    routing_contact: Mapped[int | None] = mapped_column(SmallInteger)
