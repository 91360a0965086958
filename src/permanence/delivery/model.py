"""The delivery ledger: where each message went, through which channel, and what became of it.

One ``Delivery`` row per message x recipient x event. Rows hold ids, channel codes, indexes
into the mandate version they were scheduled under and error *codes*: never an address, a
name or a text. The ledger outlives the message (no foreign key to ``messages``): after an
erasure it still answers "who received it" (Art. 19) and carries the erasure notice.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class Channel(enum.StrEnum):
    PORTAL = "portal"
    EMAIL = "email"
    WEBHOOK = "webhook"
    ESCALATION_EMAIL = "escalation_email"
    ESCALATION_SMS = "escalation_sms"
    # The second layer of the callers' notice, sent to the caller at their request:
    # ``message_id`` then holds the call's id, ``subject_id`` the caller.
    NOTICE_SMS = "notice_sms"
    # An OpenDSR status callback to the controller's system (issue 19): ``message_id`` then
    # holds the rights request's id, ``recipient_index`` the index into its callback URLs,
    # ``subject_id`` and ``mandate_id`` are NULL (a request's status is not about a message).
    OPENDSR_CALLBACK = "opendsr_callback"


ESCALATION_CHANNELS = frozenset({Channel.ESCALATION_EMAIL, Channel.ESCALATION_SMS})


class Event(enum.StrEnum):
    """What a delivery tells the recipient: a new message, or a change to one (Art. 19)."""

    NEW = "new"
    RECTIFIED = "rectified"
    ERASED = "erased"
    RESTRICTED = "restricted"
    # A new voicemail (issue 15): ``message_id`` then holds the voicemail's recording id.
    VOICEMAIL = "voicemail"
    # The callers' notice sent by SMS (channel ``notice_sms``).
    NOTICE = "notice"
    # An OpenDSR request changed status (channel ``opendsr_callback``).
    STATUS = "status"


# Events announcing something new to the recipient (not a change to what they have).
ARRIVALS = frozenset({Event.NEW, Event.VOICEMAIL})

CHANGES = frozenset({Event.RECTIFIED, Event.ERASED, Event.RESTRICTED})


class Status(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"  # handed to the next hop (SMTP server, SMS gateway)
    DELIVERED = "delivered"  # the recipient's own system has it (webhook 2xx, portal)
    VIEWED = "viewed"
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"  # gave up after the last attempt
    CANCELLED = "cancelled"  # no longer to be sent (acknowledged, erased, restricted)


# Statuses meaning the recipient received it: the Art. 19 recipient ledger.
RECEIVED = frozenset({Status.SENT, Status.DELIVERED, Status.VIEWED, Status.ACKNOWLEDGED})


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "account_id", "status", "next_attempt_at"),
        Index("ix_deliveries_message", "account_id", "message_id"),
        Index("ix_deliveries_subject", "account_id", "subject_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # No foreign keys to the message or the caller: the ledger outlives an erasure.
    message_id: Mapped[uuid.UUID]
    subject_id: Mapped[uuid.UUID | None]
    # NULL only for OpenDSR status callbacks, which no mandate version schedules.
    mandate_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("mandates.id"))
    event: Mapped[str] = mapped_column(String(16), default=Event.NEW.value)
    channel: Mapped[str] = mapped_column(String(24))
    # Index into the mandate version's `recipients`, or into `on_call.contacts` for escalation.
    recipient_index: Mapped[int]
    escalation_step: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16), default=Status.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    viewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class DeliveryEvent(Base):
    """Every state change and every attempt of a delivery: the full history."""

    __tablename__ = "delivery_events"
    __table_args__ = (Index("ix_delivery_events_delivery", "account_id", "delivery_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(String(64))


class Escalation(Base):
    """The escalation clock of one message along the on-call list.

    ``step`` counts the contacts already alerted; ``next_at`` is when the next one is due;
    ``contact_index`` is the last contact alerted (the next step goes to the one after it).
    """

    __tablename__ = "escalations"
    __table_args__ = (
        UniqueConstraint("account_id", "message_id"),
        Index("ix_escalations_due", "account_id", "state", "next_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    message_id: Mapped[uuid.UUID]
    mandate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mandates.id"))
    state: Mapped[str] = mapped_column(String(16), default="waiting")  # waiting|done|stopped
    step: Mapped[int] = mapped_column(default=0)
    contact_index: Mapped[int | None]
    next_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(32))


class WebhookSecret(Base):
    """A webhook signing secret, named by the mandate's ``secret_ref``, sealed under a key
    derived from the master key. The previous secret is kept for a grace period after a
    rotation, and both sign meanwhile, so receivers can switch without losing deliveries."""

    __tablename__ = "webhook_secrets"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(default=1)
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    previous_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    rotated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
