"""Delivery use cases: scheduling a message's deliveries, the client viewing and
acknowledging it, change notices to its recipients (Art. 19), the recipient ledger, webhook
secrets, and the escalation clock. Each takes a session opened by ``Database.session(ctx)``.

The worker (``delivery.worker``) does the sending; this module decides what is to be sent.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import secrets as secrets_module
import uuid
from dataclasses import dataclass
from typing import Protocol, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from permanence.accounts.service import mandate_by_id
from permanence.audit import service as audit
from permanence.crypto.keyring import Keyring
from permanence.crypto.primitives import open_sealed, seal
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
    WebhookSecret,
)
from permanence.errors import NotFound, ValidationFailed
from permanence.mandates.hours import next_on_call_start, on_call_now
from permanence.mandates.schema import (
    EmailNotificationRecipient,
    Mandate,
    PortalRecipient,
    WebhookRecipient,
)
from permanence.messages.model import Message

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
# Both secrets sign for this long after a rotation.
SECRET_GRACE = dt.timedelta(hours=24)

_SECRET_REF = re.compile(r"(env|file|vault):[A-Za-z0-9_./:-]+")


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


class Notifiable(Protocol):
    """What the ledger reads of the thing it announces: a message, or a voicemail."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def account_id(self) -> uuid.UUID: ...
    @property
    def caller_id(self) -> uuid.UUID: ...
    @property
    def acknowledged_at(self) -> dt.datetime | None: ...
    @property
    def urgent(self) -> bool: ...
    @property
    def purpose(self) -> str | None: ...
    @property
    def created_at(self) -> dt.datetime: ...


@dataclass(frozen=True)
class VoicemailNotice:
    """A voicemail as the ledger sees it: "acknowledged" is "treated" in the inbox."""

    id: uuid.UUID
    account_id: uuid.UUID
    caller_id: uuid.UUID
    created_at: dt.datetime
    acknowledged_at: dt.datetime | None
    urgent: bool = False
    purpose: str | None = None


def voicemail_notice(session: Session, recording_id: uuid.UUID) -> VoicemailNotice | None:
    from permanence.recordings.model import Recording

    rec = session.get(Recording, recording_id)
    if rec is None or rec.kind != "voicemail":
        return None
    return VoicemailNotice(rec.id, rec.account_id, rec.caller_id, rec.created_at, rec.treated_at)


def target_of(session: Session, event: str, target_id: uuid.UUID) -> Notifiable | None:
    """The message (or, for ``voicemail`` rows, the voicemail) a ledger row announces."""
    if event == Event.VOICEMAIL:
        return voicemail_notice(session, target_id)
    return session.get(Message, target_id)


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
    message: Message,
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
        conn.execute(insert(_DELIVERIES), deliveries)
        conn.execute(insert(_EVENTS), events)
    if mandate.on_call is not None:
        start = message.created_at or now
        conn.execute(
            insert(_ESCALATIONS).values(
                id=uuid.uuid4(),
                account_id=message.account_id,
                message_id=message.id,
                mandate_id=mandate_id,
                state="waiting",
                step=0,
                next_at=mandate.on_call.escalation_after.add_to(start),
                created_at=now,
            )
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


def _message(session: Session, message_id: uuid.UUID) -> Message:
    msg = session.get(Message, message_id)
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


def mark_acknowledged(session: Session, message_id: uuid.UUID) -> Message:
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


# -- Art. 19: change notices and the recipient ledger -----------------------------------------


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


@dataclass(frozen=True)
class Recipient:
    """Who received a message (the Art. 19 answer to the data subject)."""

    channel: str
    description: str  # "portail", the e-mail address, the webhook's host
    first_received_at: dt.datetime


@dataclass(frozen=True)
class LedgerEntry:
    delivery_id: uuid.UUID
    event: str
    channel: str
    recipient_index: int
    escalation_step: int | None
    status: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    delivered_at: dt.datetime | None
    viewed_at: dt.datetime | None
    acknowledged_at: dt.datetime | None
    failed_at: dt.datetime | None
    next_attempt_at: dt.datetime | None


def ledger(session: Session, message_id: uuid.UUID) -> list[LedgerEntry]:
    """The message's deliveries, oldest first (the portal's ledger view). Ids and codes only."""
    rows = _deliveries(session, message_id)
    if not rows:
        _message(session, message_id)  # 404 for another account's or an unknown message
    return [
        LedgerEntry(
            delivery_id=r.id,
            event=r.event,
            channel=r.channel,
            recipient_index=r.recipient_index,
            escalation_step=r.escalation_step,
            status=r.status,
            attempts=r.attempts,
            last_error=r.last_error,
            created_at=r.created_at,
            sent_at=r.sent_at,
            delivered_at=r.delivered_at,
            viewed_at=r.viewed_at,
            acknowledged_at=r.acknowledged_at,
            failed_at=r.failed_at,
            next_attempt_at=r.next_attempt_at,
        )
        for r in rows
    ]


def history(session: Session, delivery_id: uuid.UUID) -> list[DeliveryEvent]:
    """Every state change and attempt of one delivery, oldest first."""
    account_id = ctx_of(session).require_account()
    row = session.get(Delivery, delivery_id)
    if row is None or row.account_id != account_id:
        raise NotFound("no such delivery")
    return list(
        session.scalars(
            select(DeliveryEvent)
            .where(DeliveryEvent.account_id == account_id, DeliveryEvent.delivery_id == row.id)
            .order_by(DeliveryEvent.at, DeliveryEvent.attempt)
        ).all()
    )


def recipients_of(session: Session, message_id: uuid.UUID) -> list[Recipient]:
    """Every recipient the message reached (any event), once, with when it first did.

    On-call contacts are described by their e-mail or number: they are the client's staff,
    whom the mandate names; callers are never in this list.
    """
    rows = _deliveries(session, message_id)
    if not rows:
        _message(session, message_id)
    mandates: dict[uuid.UUID, Mandate] = {}
    seen: dict[tuple[str, str], dt.datetime] = {}
    for row in rows:
        if row.status not in RECEIVED or row.mandate_id is None:
            continue
        if row.mandate_id not in mandates:
            mandates[row.mandate_id] = mandate_by_id(session, row.mandate_id)[1]
        key = (row.channel, describe(mandates[row.mandate_id], row))
        when = row.sent_at or row.delivered_at or row.created_at
        if key not in seen or when < seen[key]:
            seen[key] = when
    return [Recipient(c, d, t) for (c, d), t in sorted(seen.items(), key=lambda kv: kv[1])]


def describe(mandate: Mandate, row: Delivery) -> str:
    if row.channel == Channel.NOTICE_SMS:
        return "l'appelant (notice d'information)"
    if row.channel in ESCALATION_CHANNELS:
        contact = mandate.on_call.contacts[row.recipient_index] if mandate.on_call else None
        if contact is None:
            return "astreinte"
        if row.channel == Channel.ESCALATION_EMAIL and contact.email:
            return contact.email
        return contact.phone
    recipient = mandate.recipients[row.recipient_index]
    if isinstance(recipient, EmailNotificationRecipient):
        return recipient.to
    if isinstance(recipient, WebhookRecipient):
        from urllib.parse import urlsplit

        return urlsplit(recipient.url).hostname or "webhook"
    return "portail"


# -- webhook secrets --------------------------------------------------------------------------


def _secret_aead(keyring: Keyring) -> AESGCM:
    return AESGCM(keyring.derived_secret("webhook"))


def _secret_ad(account_id: uuid.UUID, name: str, version: int) -> bytes:
    return f"webhook-secret|{account_id}|{name}|{version}".encode()


def set_webhook_secret(session: Session, keyring: Keyring, name: str) -> tuple[str, int]:
    """Create, or rotate, the account's signing secret named ``name`` (the mandate's
    ``secret_ref``); returns the secret, to be shown once, and its version. After a rotation
    the previous secret keeps signing alongside for ``SECRET_GRACE``."""
    account_id = ctx_of(session).require_account()
    if not _SECRET_REF.fullmatch(name):
        raise ValidationFailed(
            "the name must be the mandate's secret_ref, e.g. env:CLIENT_WEBHOOK_SECRET"
        )
    secret = "whsec_" + secrets_module.token_urlsafe(32)
    aead = _secret_aead(keyring)
    row = session.scalars(
        select(WebhookSecret).where(
            WebhookSecret.account_id == account_id, WebhookSecret.name == name
        )
    ).first()
    now = utcnow()
    if row is None:
        row = WebhookSecret(id=uuid.uuid4(), account_id=account_id, name=name, version=1)
        row.secret_sealed = seal(aead, secret.encode(), _secret_ad(account_id, name, 1))
        session.add(row)
        action = "webhook_secret.create"
    else:
        # The previous secret stays sealed under its own version's associated data.
        row.previous_sealed = row.secret_sealed
        row.version += 1
        row.secret_sealed = seal(aead, secret.encode(), _secret_ad(account_id, name, row.version))
        row.rotated_at = now
        action = "webhook_secret.rotate"
    session.flush()
    audit.record(session, action, "webhook_secret", row.id, details={"version": row.version})
    return secret, row.version


def signing_secrets(session: Session, keyring: Keyring, ref: str, now: dt.datetime) -> list[bytes]:
    """The secrets that sign for ``ref``: the stored one (and the previous one during the
    grace period), else the ``env:`` variable or ``file:`` content; empty if none."""
    account_id = ctx_of(session).require_account()
    row = session.scalars(
        select(WebhookSecret).where(
            WebhookSecret.account_id == account_id, WebhookSecret.name == ref
        )
    ).first()
    if row is not None:
        aead = _secret_aead(keyring)
        out = [open_sealed(aead, row.secret_sealed, _secret_ad(account_id, ref, row.version))]
        if row.previous_sealed and row.rotated_at and now < row.rotated_at + SECRET_GRACE:
            ad = _secret_ad(account_id, ref, row.version - 1)
            out.append(open_sealed(aead, row.previous_sealed, ad))
        return out
    kind, _, where = ref.partition(":")
    # A mandate is the client's document: it must not point the signature at our own
    # settings (the master key among them).
    if kind == "env" and not where.upper().startswith("PERMANENCE_") and os.environ.get(where):
        return [os.environ[where].encode()]
    if kind == "file":
        try:
            with open(where, encoding="utf-8") as fh:
                value = fh.read().strip()
        except OSError:
            return []
        return [value.encode()] if value else []
    return []


# -- escalation -------------------------------------------------------------------------------


def escalate_due(session: Session, now: dt.datetime, limit: int = 100) -> list[Delivery]:
    """Advance the escalation clocks that are due for the context's account.

    Step 1 alerts the contact on call now (or waits for the next window to open when nobody
    is); each later step, one ``escalation_after`` apart, alerts the next contact in the
    list, until every contact has been alerted once. An alert is an e-mail when the contact
    has an address, and an SMS. Returns the alert rows created (due now for the worker).
    """
    account_id = ctx_of(session).require_account()
    clocks = session.scalars(
        select(Escalation)
        .where(
            Escalation.account_id == account_id,
            Escalation.state == "waiting",
            Escalation.next_at <= now,
        )
        .order_by(Escalation.next_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    created: list[Delivery] = []
    for esc in clocks:
        msg: Notifiable | None = session.get(Message, esc.message_id)
        event = Event.NEW
        if msg is None and (vm := voicemail_notice(session, esc.message_id)) is not None:
            msg, event = vm, Event.VOICEMAIL
        if msg is None or msg.acknowledged_at is not None:
            reason = "message_gone" if msg is None else "acknowledged"
            esc.state, esc.next_at, esc.ended_at, esc.end_reason = "stopped", None, now, reason
            continue
        _, mandate = mandate_by_id(session, esc.mandate_id)
        if mandate.on_call is None:
            esc.state, esc.next_at, esc.ended_at, esc.end_reason = "done", None, now, "no_on_call"
            continue
        contacts = mandate.on_call.contacts
        if esc.step == 0:
            # The rota is read in the mandate's zone, as the call routing reads it.
            index = on_call_now(mandate, now)
            if index is None:
                esc.next_at = next_on_call_start(mandate, now)
                continue
        else:
            index = ((esc.contact_index or 0) + 1) % len(contacts)
        esc.step += 1
        esc.contact_index = index
        channels = [Channel.ESCALATION_SMS]
        if contacts[index].email:
            channels.insert(0, Channel.ESCALATION_EMAIL)
        rows = [
            _new_delivery(msg, esc.mandate_id, ch, index, now, event=event, step=esc.step)
            for ch in channels
        ]
        session.add_all(rows)
        session.flush()
        for row in rows:
            session.add(
                DeliveryEvent(
                    account_id=row.account_id, delivery_id=row.id, at=now, status=row.status
                )
            )
        created += rows
        if esc.step >= len(contacts):
            esc.state, esc.next_at, esc.ended_at, esc.end_reason = "done", None, now, "list_done"
        else:
            esc.next_at = mandate.on_call.escalation_after.add_to(now)
        audit.record(
            session,
            f"{event_kind(event)}.escalate",
            event_kind(event),
            msg.id,
            subject_id=msg.caller_id,
            details={"step": esc.step, "contact": index},
        )
    session.flush()
    return created
