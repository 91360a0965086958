"""The recipient ledger, read: a message's deliveries (the portal's ledger view), one
delivery's history, and who received a message (the Art. 19 answer to the data subject).
Each takes a session opened by ``Database.session(ctx)``; ``delivery.service`` writes the rows.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.service import mandate_by_id
from permanence.db import ctx_of
from permanence.delivery.model import (
    ESCALATION_CHANNELS,
    RECEIVED,
    Channel,
    Delivery,
    DeliveryEvent,
)
from permanence.delivery.service import _deliveries, _message
from permanence.errors import NotFound
from permanence.mandates.schema import EmailNotificationRecipient, Mandate, WebhookRecipient


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
