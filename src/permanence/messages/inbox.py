"""The client's message list, readable at a glance: who called (name, phone), the first
words of the message, urgency, state and time, for one page of messages.

Showing those opens each message of the page: it is one audited read for the page
(``messages.listed``, with the context's reason and the number of messages opened), the way
the agenda's week view is. Opening one message stays its own read (``message.read``) and is
what marks it viewed in the delivery ledger.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.service import mandate_by_id
from permanence.audit import service as audit
from permanence.crypto.keyring import Keyring
from permanence.db import ctx_of
from permanence.delivery.service import mark_acknowledged
from permanence.errors import KeyUnavailable, NotFound, ValidationFailed
from permanence.mandates.base import FieldType
from permanence.mandates.mandate import Mandate
from permanence.messages.export import french_phone
from permanence.messages.model import Message
from permanence.staff.training import require_trained

EXCERPT_WORDS = 12
MAX_PAGE = 100
MAX_BULK = 100
_NAME_FIELDS = ("first_name", "last_name")
_NOT_EXCERPT = frozenset({"first_name", "last_name", "email", "address", "company", "city"})


@dataclass(frozen=True)
class Filters:
    status: str | None = None  # "new" or "acknowledged"
    urgent: bool = False
    since: dt.datetime | None = None  # received at or after
    until: dt.datetime | None = None  # received before


@dataclass(frozen=True)
class InboxRow:
    message: Message
    caller: str  # "" when the caller was erased
    phone: str
    excerpt: str
    erased: bool


def _query(account_id: uuid.UUID, filters: Filters) -> Any:
    q = select(Message).where(Message.account_id == account_id)
    if filters.status is not None:
        q = q.where(Message.status == filters.status)
    if filters.urgent:
        q = q.where(Message.urgent.is_(True))
    if filters.since is not None:
        q = q.where(Message.created_at >= filters.since)
    if filters.until is not None:
        q = q.where(Message.created_at < filters.until)
    return q


def page(
    session: Session, keyring: Keyring, filters: Filters, *, limit: int, offset: int
) -> list[InboxRow]:
    """One page of the account's messages, newest first, each with who called and the first
    words of the message; one audited read for the page."""
    ctx = ctx_of(session)
    account_id = ctx.require_account()
    require_trained(session, ctx)
    q = _query(account_id, filters).order_by(Message.created_at.desc(), Message.id)
    found = list(session.scalars(q.limit(min(limit, MAX_PAGE)).offset(offset)))
    mandates: dict[uuid.UUID, Mandate] = {}
    rows: list[InboxRow] = []
    for msg in found:
        if msg.mandate_id not in mandates:
            mandates[msg.mandate_id] = mandate_by_id(session, msg.mandate_id)[1]
        try:
            cipher = keyring.cipher(session, msg.account_id, msg.caller_id)
            values = cipher.open_json("messages", "payload", msg.id, msg.payload_sealed)
        except KeyUnavailable:
            rows.append(InboxRow(msg, "", "", "", erased=True))
            continue
        rows.append(_row(msg, values, mandates[msg.mandate_id]))
    if found:
        audit.record(
            session,
            "messages.listed",
            "account",
            account_id,
            details={"messages": len(found), "offset": offset},
        )
    return rows


def _row(msg: Message, values: Mapping[str, Any], mandate: Mandate) -> InboxRow:
    caller = " ".join(str(values[k]) for k in _NAME_FIELDS if values.get(k))
    purpose = next((p for p in mandate.purposes if p.code == msg.purpose), None)
    fields = [f for f in (purpose.resolved_fields if purpose else ()) if values.get(f.name)]
    phones = [str(values[f.name]) for f in fields if f.type is FieldType.PHONE]
    # The message itself: its free text, else the first plain text that is not an identity.
    texts = [f for f in fields if f.type is FieldType.FREE_TEXT] + [
        f for f in fields if f.type is FieldType.TEXT and f.name not in _NOT_EXCERPT
    ]
    excerpt = _first_words(str(values[texts[0].name])) if texts else ""
    return InboxRow(msg, caller, french_phone(phones[0]) if phones else "", excerpt, erased=False)


def _first_words(text: str) -> str:
    words = text.split()
    if len(words) <= EXCERPT_WORDS:
        return " ".join(words)
    return " ".join(words[:EXCERPT_WORDS]) + " …"


def acknowledge_many(session: Session, message_ids: Sequence[uuid.UUID]) -> int:
    """Acknowledge several messages of the context's account at once; returns how many were
    still to handle. Another account's id is refused as not found, and nothing is written."""
    if not message_ids:
        raise ValidationFailed("tick at least one message")
    if len(message_ids) > MAX_BULK:
        raise ValidationFailed(f"at most {MAX_BULK} messages at once")
    account_id = ctx_of(session).require_account()
    ids = list(dict.fromkeys(message_ids))
    found = {
        m.id: m
        for m in session.scalars(
            select(Message).where(Message.account_id == account_id, Message.id.in_(ids))
        )
    }
    if len(found) != len(ids):
        raise NotFound("no such message")
    pending = sum(1 for m in found.values() if m.acknowledged_at is None)
    for message_id in ids:
        mark_acknowledged(session, message_id)
    return pending
