"""Delivery use cases: scheduling a message's deliveries, the client viewing and
acknowledging it, and change notices to its recipients (Art. 19). Each takes a session opened
by ``Database.session(ctx)``. Beside it: the recipient ledger read (``delivery.ledger``), the
webhook secrets (``delivery.webhook_secrets``) and the escalation clock
(``delivery.escalation``).

The worker (``delivery.worker``) does the sending; these modules decide what is to be sent.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from permanence.accounts.service import mandate_by_id
from permanence.audit import service as audit
from permanence.db import ctx_of, utcnow
from permanence.delivery.model import (
    CHANGES,
    ESCALATION_CHANNELS,
    RECEIVED,
    Channel,
    Delivery,
    DeliveryEvent,
    Escalation,
    Event,
    Status,
)
from permanence.delivery.targets import LedgerMessage, Notifiable, read_message

# What a ledger row announces, and the readers the features register (delivery/targets.py):
# re-exported here, the path the voicemails, the downloads and the tests use.
from permanence.delivery.targets import VoicemailNotice as VoicemailNotice
from permanence.delivery.targets import message_reader as message_reader
from permanence.delivery.targets import reads_voicemails as reads_voicemails
from permanence.delivery.targets import target_of as target_of
from permanence.delivery.targets import voicemail_notice as voicemail_notice
from permanence.delivery.targets import voicemail_reader as voicemail_reader
from permanence.errors import NotFound, ValidationFailed
from permanence.mandates.schema import (
    EmailNotificationRecipient,
    Mandate,
    PortalRecipient,
    WebhookRecipient,
)

# Wait after failed attempt n (1-based); after the last one the delivery has failed.
RETRY_DELAYS: tuple[dt.timedelta, ...] = (
    dt.timedelta(minutes=1),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=30),
    dt.timedelta(hours=2),
    dt.timedelta(hours=12),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# Spread retries by +/- 10 % so that receivers coming back up are not hit all at once.
JITTER = 0.10


# -- state changes ----------------------------------------------------------------------------


_STAMP = {
    Status.SENT: "sent_at",
    Status.DELIVERED: "delivered_at",
    Status.VIEWED: "viewed_at",
    Status.ACKNOWLEDGED: "acknowledged_at",
    Status.FAILED: "failed_at",
    Status.CANCELLED: "cancelled_at",
}


def transition(
    session: Session,
    delivery: Delivery,
    status: Status,
    at: dt.datetime,
    *,
    error: str | None = None,
) -> None:
    """Move a delivery to ``status`` and append the history event."""
    delivery.status = status.value
    if status is not Status.PENDING:
        delivery.next_attempt_at = None
        stamp = _STAMP[status]
        if getattr(delivery, stamp) is None:
            setattr(delivery, stamp, at)
    if error is not None:
        delivery.last_error = error
    session.add(
        DeliveryEvent(
            account_id=delivery.account_id,
            delivery_id=delivery.id,
            at=at,
            status=status.value,
            attempt=delivery.attempts,
            error=error,
        )
    )


def retry_delay(failed_attempts: int, rng: random.Random | None = None) -> dt.timedelta | None:
    """How long to wait after ``failed_attempts`` failures; None: give up."""
    if failed_attempts < 1 or failed_attempts > len(RETRY_DELAYS):
        return None
    base = RETRY_DELAYS[failed_attempts - 1]
    factor = 1 + (rng or random).uniform(-JITTER, JITTER)  # jitter, not security
    return base * factor


# -- scheduling -------------------------------------------------------------------------------


def _new_delivery(
    message: Notifiable,
    mandate_id: uuid.UUID,
    channel: Channel,
    index: int,
    now: dt.datetime,
    *,
    event: Event = Event.NEW,
    step: int | None = None,
) -> Delivery:
    return Delivery(
        id=uuid.uuid4(),
        account_id=message.account_id,
        message_id=message.id,
        subject_id=message.caller_id,
        mandate_id=mandate_id,
        event=event.value,
        channel=channel.value,
        recipient_index=index,
        escalation_step=step,
        status=Status.PENDING.value,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )


_RECIPIENT_CHANNEL = {
    PortalRecipient: Channel.PORTAL,
    EmailNotificationRecipient: Channel.EMAIL,
    WebhookRecipient: Channel.WEBHOOK,
}


def schedule(
    session: Session,
    message: LedgerMessage,
    mandate: Mandate | None = None,
    *,
    restricted: bool | None = None,
) -> list[uuid.UUID]:
    """Create the message's ledger rows from the recipients of its mandate version.

    The portal has it at once (``delivered``); e-mail and webhook rows are due now for the
    worker. With an on-call list, the escalation clock starts. ``mandate`` is the parsed
    mandate version of ``message.mandate_id`` when the caller already holds it, and
    ``restricted`` whether its caller is restricted (Art. 18) when the caller row is loaded.
    Returns the ids of the ledger rows.
    """
    if mandate is None:
        _, mandate = mandate_by_id(session, message.mandate_id)
    return _schedule(session, message, message.mandate_id, mandate, Event.NEW, restricted)


def schedule_voicemail(
    session: Session, notice: VoicemailNotice, mandate_id: uuid.UUID
) -> list[uuid.UUID]:
    """A new voicemail: the same recipients, channels, retries and escalation as a message
    (the e-mail only says a voicemail is waiting)."""
    _, mandate = mandate_by_id(session, mandate_id)
    return _schedule(session, notice, mandate_id, mandate, Event.VOICEMAIL)


_DELIVERIES = cast(Table, Delivery.__table__)
_EVENTS = cast(Table, DeliveryEvent.__table__)
_ESCALATIONS = cast(Table, Escalation.__table__)
# Built once, their rows given as parameters: a statement built per message with its values
# inline (``.values(...)``) cost more to build and to key for the cache than to run.
_INSERT_DELIVERIES = insert(_DELIVERIES)
_INSERT_EVENTS = insert(_EVENTS)
_INSERT_ESCALATION = insert(_ESCALATIONS)


def _schedule(
    session: Session,
    message: Notifiable,
    mandate_id: uuid.UUID,
    mandate: Mandate,
    event: Event,
    restricted: bool | None = None,
) -> list[uuid.UUID]:
    """The ledger rows, their history events and the escalation clock, written as Core
    multi-row INSERTs (one per table): the hot path of taking a message, where the ORM's
    unit of work cost more than the statements themselves."""
    now = utcnow()
    held = is_restricted(session, message) if restricted is None else restricted
    deliveries: list[dict[str, object]] = []
    events: list[dict[str, object]] = []
    for index, recipient in enumerate(mandate.recipients):
        channel = _RECIPIENT_CHANNEL[type(recipient)]
        row = _delivery_row(message, mandate_id, channel, index, now, event=event)
        deliveries.append(row)
        # The history starts "pending"; the portal row is delivered at once.
        events.append(_event_row(row, now, Status.PENDING))
        if held:
            row["next_attempt_at"] = None  # restricted caller (Art. 18): released when lifted
        elif channel is Channel.PORTAL:
            row["status"] = Status.DELIVERED.value
            row["next_attempt_at"] = None
            row["delivered_at"] = now
            events.append(_event_row(row, now, Status.DELIVERED))
    session.flush()  # the message (or voicemail) row the ledger refers to
    conn = session.connection()
    if deliveries:
        conn.execute(_INSERT_DELIVERIES, deliveries)
        conn.execute(_INSERT_EVENTS, events)
    if mandate.on_call is not None:
        start = message.created_at or now
        conn.execute(
            _INSERT_ESCALATION,
            {
                "id": uuid.uuid4(),
                "account_id": message.account_id,
                "message_id": message.id,
                "mandate_id": mandate_id,
                "state": "waiting",
                "step": 0,
                "next_at": mandate.on_call.escalation_after.add_to(start),
                "created_at": now,
            },
        )
    audit.record(
        session,
        "delivery.schedule",
        "voicemail" if event is Event.VOICEMAIL else "message",
        message.id,
        subject_id=message.caller_id,
        details={"recipients": len(deliveries), "escalation": mandate.on_call is not None},
    )
    return [d["id"] for d in deliveries]  # type: ignore[misc]


def _delivery_row(
    message: Notifiable,
    mandate_id: uuid.UUID,
    channel: Channel,
    index: int,
    now: dt.datetime,
    *,
    event: Event,
) -> dict[str, object]:
    """A new ledger row as ``_new_delivery`` makes it, as the columns of one INSERT."""
    return {
        "id": uuid.uuid4(),
        "account_id": message.account_id,
        "message_id": message.id,
        "subject_id": message.caller_id,
        "mandate_id": mandate_id,
        "event": event.value,
        "channel": channel.value,
        "recipient_index": index,
        "escalation_step": None,
        "status": Status.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "delivered_at": None,
    }


def _event_row(row: dict[str, object], at: dt.datetime, status: Status) -> dict[str, object]:
    return {
        "id": uuid.uuid4(),
        "account_id": row["account_id"],
        "delivery_id": row["id"],
        "at": at,
        "status": status.value,
        "attempt": 0,
        "error": None,
    }


def event_kind(event: Event | str) -> str:
    """What a ledger row is about: ``voicemail`` or ``message``."""
    return "voicemail" if event == Event.VOICEMAIL else "message"


def is_restricted(session: Session, message: Notifiable) -> bool:
    """Whether the message's caller is under an Art. 18 restriction: kept, not delivered."""
    from permanence.subjects.model import Caller

    with session.no_autoflush:
        restricted = session.scalar(
            select(Caller.restricted_at).where(Caller.id == uuid.UUID(str(message.caller_id)))
        )
    return restricted is not None


# -- the client's side ------------------------------------------------------------------------


def _message(session: Session, message_id: uuid.UUID) -> LedgerMessage:
    msg = read_message(session, message_id)
    if msg is None or msg.account_id != ctx_of(session).account_id:
        raise NotFound("no such message")
    return msg


def _deliveries(session: Session, message_id: uuid.UUID) -> list[Delivery]:
    account_id = ctx_of(session).require_account()
    return list(
        session.scalars(
            select(Delivery)
            .where(Delivery.account_id == account_id, Delivery.message_id == message_id)
            .order_by(Delivery.created_at, Delivery.channel, Delivery.recipient_index)
        ).all()
    )


def mark_viewed(session: Session, message_id: uuid.UUID) -> None:
    """The client opened the message in the portal. Idempotent: only the first view counts."""
    msg = _message(session, message_id)
    now = utcnow()
    changed = 0
    for row in _deliveries(session, msg.id):
        if row.channel == Channel.PORTAL and row.event == Event.NEW and row.viewed_at is None:
            if row.status == Status.DELIVERED:
                transition(session, row, Status.VIEWED, now)
            else:
                row.viewed_at = now
            changed += 1
    if changed:
        audit.record(session, "delivery.viewed", "message", msg.id, subject_id=msg.caller_id)


def mark_acknowledged(session: Session, message_id: uuid.UUID) -> LedgerMessage:
    """The client acknowledged the message: recorded on the message (unless already) and on
    the portal row; the escalation stops and alerts not yet sent are cancelled. Idempotent,
    and safe to call after another use case already set ``acknowledged_at``."""
    msg = _message(session, message_id)
    if msg.acknowledged_at is None:
        msg.acknowledged_at = utcnow()
        msg.status = "acknowledged"
        audit.record(session, "message.acknowledge", "message", msg.id, subject_id=msg.caller_id)
    at = msg.acknowledged_at
    for row in _deliveries(session, msg.id):
        if row.event != Event.NEW:
            continue
        if row.channel == Channel.PORTAL and row.status != Status.ACKNOWLEDGED:
            if row.viewed_at is None:
                row.viewed_at = at
            transition(session, row, Status.ACKNOWLEDGED, at)
        elif row.channel in ESCALATION_CHANNELS and row.status == Status.PENDING:
            transition(session, row, Status.CANCELLED, at, error="acknowledged")
    _stop_escalation(session, msg.id, at, "acknowledged")
    return msg


def voicemail_treated(session: Session, recording_id: uuid.UUID, at: dt.datetime) -> None:
    """A voicemail was treated: its portal row is acknowledged, alerts not yet sent are
    cancelled, and the escalation stops (as for an acknowledged message)."""
    for row in _deliveries(session, recording_id):
        if row.event != Event.VOICEMAIL:
            continue
        if row.channel == Channel.PORTAL and row.status != Status.ACKNOWLEDGED:
            if row.viewed_at is None:
                row.viewed_at = at
            transition(session, row, Status.ACKNOWLEDGED, at)
        elif row.channel in ESCALATION_CHANNELS and row.status == Status.PENDING:
            transition(session, row, Status.CANCELLED, at, error="acknowledged")
    _stop_escalation(session, recording_id, at, "acknowledged")


def _stop_escalation(session: Session, message_id: uuid.UUID, now: dt.datetime, why: str) -> None:
    account_id = ctx_of(session).require_account()
    esc = session.scalars(
        select(Escalation).where(
            Escalation.account_id == account_id,
            Escalation.message_id == message_id,
            Escalation.state == "waiting",
        )
    ).first()
    if esc is not None:
        esc.state, esc.next_at, esc.ended_at, esc.end_reason = "stopped", None, now, why


# -- Art. 19: change notices to the recipients ------------------------------------------------


def notify_recipients(session: Session, message_id: uuid.UUID, change: str) -> list[Delivery]:
    """Enqueue a change notice (``rectified``, ``erased``, ``restricted``) to every recipient
    the message reached, through the channel it reached them by (Art. 19).

    The recipients are the mandate's: portal, e-mail and webhook rows that were sent or
    delivered. On-call contacts only got an alert without personal data, so they get none.
    Works after the message itself was erased (the ledger outlives it). On erasure and
    restriction, deliveries not yet made are cancelled and the escalation stops: nobody is
    to be told about a message that is gone or frozen.
    """
    try:
        event = Event(change)
    except ValueError:
        event = Event.NEW
    if event not in CHANGES:
        raise ValidationFailed(
            "change must be one of: " + ", ".join(sorted(e.value for e in CHANGES))
        )
    rows = _deliveries(session, message_id)
    if not rows:
        _message(session, message_id)  # 404 for another account's or an unknown message
    now = utcnow()
    received: dict[tuple[str, int, uuid.UUID], Delivery] = {}
    for row in rows:
        if row.event != Event.NEW:
            continue
        if row.channel in ESCALATION_CHANNELS or row.mandate_id is None:
            continue
        if row.status in RECEIVED:
            received.setdefault((row.channel, row.recipient_index, row.mandate_id), row)
        elif row.status == Status.PENDING and event in {Event.ERASED, Event.RESTRICTED}:
            transition(session, row, Status.CANCELLED, now, error=f"message_{event.value}")
    if event in {Event.ERASED, Event.RESTRICTED}:
        for row in rows:
            if row.channel in ESCALATION_CHANNELS and row.status == Status.PENDING:
                transition(session, row, Status.CANCELLED, now, error=f"message_{event.value}")
        _stop_escalation(session, message_id, now, f"message_{event.value}")
    notices: list[Delivery] = []
    for (channel, index, mandate_id), original in received.items():
        notice = Delivery(
            id=uuid.uuid4(),
            account_id=original.account_id,
            message_id=message_id,
            subject_id=original.subject_id,
            mandate_id=mandate_id,
            event=event.value,
            channel=channel,
            recipient_index=index,
            status=Status.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        notices.append(notice)
    session.add_all(notices)
    session.flush()
    for notice in notices:
        session.add(
            DeliveryEvent(
                account_id=notice.account_id,
                delivery_id=notice.id,
                at=now,
                status=Status.PENDING.value,
            )
        )
        if notice.channel == Channel.PORTAL:
            transition(session, notice, Status.DELIVERED, now)
    session.flush()
    subject = rows[0].subject_id if rows else None
    audit.record(
        session,
        "delivery.notify_change",
        "message",
        message_id,
        subject_id=subject,
        details={"change": event.value, "recipients": len(notices)},
    )
    return notices
