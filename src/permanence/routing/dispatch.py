"""The dispatcher: offer the oldest waiting call of the highest priority to the longest-idle
available operator, by placing a call to that operator's device through the provider's REST
API (docs/adr/0023-queue-dispatch.md).

Available means: presence ``free`` (set by the operator; a wrap-up ends by itself after
``PERMANENCE_ROUTING_WRAP_UP_SECONDS``), signed in (a web session seen within the idle
timeout), trained (the training gate), with a device, and not already offered or on a call.
Longest idle: the earliest ``since`` of the ``free`` state.

It runs when a call is queued (each ``wait`` fetch), when an operator becomes available,
when an offer fails, and on every pass of the worker (``tick``), so a lost callback or a
provider that did not answer only delays an offer: an offer with no news after the ring time
goes back to the queue, and a REST failure leaves the call waiting (its longest wait still
sends it to voicemail: that needs no REST call).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.model import Did
from permanence.audit import service as audit
from permanence.calls.model import TERMINAL_STATUSES, Call
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.db import switch_account, utcnow
from permanence.errors import ConfigurationError
from permanence.needtoknow import service as needtoknow
from permanence.routing import queue
from permanence.routing.model import OperatorLine, QueueEntry
from permanence.runtime import Runtime
from permanence.staff import training
from permanence.staff.auth import IDLE_TIMEOUT
from permanence.staff.model import User, WebSession
from permanence.stats import presence
from permanence.stats.model import OperatorPresence
from permanence.telephony.ports import CallsApi, ProviderFailed, TelnyxTexmlApi, TwilioRestApi

log = logging.getLogger("permanence.routing")

MAX_OFFERS_PER_PASS = 20
# An offer with no news from the provider this long after the ring time is taken back.
LOST_OFFER_GRACE = dt.timedelta(seconds=20)
ANSWERING = (Role.OPERATOR, Role.SUPERVISOR)


def context() -> AccessContext:
    return AccessContext.system("routing:dispatch")


@dataclass(frozen=True)
class Offer:
    call_id: uuid.UUID
    account_id: uuid.UUID
    operator_id: uuid.UUID
    device: str
    caller_id: str


def end_wrap_ups(session: Session, settings: Settings, now: dt.datetime) -> int:
    """Automatic wrap-up: an operator in wrap-up for the set time is available again (idle
    since the wrap-up's end)."""
    limit = dt.timedelta(seconds=settings.routing_wrap_up_seconds)
    rows = session.scalars(
        select(OperatorPresence).where(
            OperatorPresence.state == "wrap_up", OperatorPresence.since <= now - limit
        )
    ).all()
    for row in rows:
        presence.move(session, row.user_id, "free", row.since + limit)
    return len(rows)


def take_back_lost_offers(session: Session, settings: Settings, now: dt.datetime) -> int:
    """Offers the provider never reported on (a lost callback, a dead provider)."""
    limit = dt.timedelta(seconds=settings.telephony_ring_seconds) + LOST_OFFER_GRACE
    rows = session.scalars(
        select(QueueEntry).where(
            QueueEntry.state == "offered",
            QueueEntry.offered_at <= now - limit,
            QueueEntry.offer_status.in_(("initiated", "ringing")),
        )
    ).all()
    for entry in rows:
        queue.back_to_queue(session, entry, missed=False, reason="lost")
    return len(rows)


def available_operators(session: Session, now: dt.datetime) -> list[tuple[uuid.UUID, str]]:
    """Operators who may be offered a call now, longest idle first, with their device."""
    live = select(WebSession.user_id).where(
        WebSession.expires_at > now, WebSession.last_seen_at >= now - IDLE_TIMEOUT
    )
    busy = select(QueueEntry.operator_id).where(
        QueueEntry.state.in_(("offered", "connected")), QueueEntry.operator_id.is_not(None)
    )
    rows = session.execute(
        select(User.id, OperatorLine.device)
        .join(OperatorLine, OperatorLine.user_id == User.id)
        .join(OperatorPresence, OperatorPresence.user_id == User.id)
        .where(
            User.active.is_(True),
            User.role.in_(ANSWERING),
            OperatorPresence.state == "free",
            User.id.in_(live),
            User.id.not_in(busy),
        )
        .order_by(OperatorPresence.since, User.id)
    ).all()
    return [(uid, device) for uid, device in rows if not training.missing(session, uid, now)]


def next_offer(session: Session, now: dt.datetime) -> Offer | None:
    """Reserve the next offer (in this transaction): the entry is ``offered`` to the chosen
    operator before any REST call, so two dispatchers never offer it twice."""
    waiting = select(QueueEntry).where(
        QueueEntry.state == "queued",
        QueueEntry.deadline_at > now,
        QueueEntry.result.is_(None),
    )
    operators = available_operators(session, now)
    if not operators:
        return None
    entries = session.scalars(
        waiting.order_by(QueueEntry.priority.desc(), QueueEntry.enqueued_at)
        .limit(MAX_OFFERS_PER_PASS)
        .with_for_update(skip_locked=True)
    ).all()
    for entry in entries:
        switch_account(session, entry.account_id)
        # A health-data account on a need-to-know basis is offered to its assigned operators.
        allowed = needtoknow.may_answer(session, entry.account_id, [u for u, _d in operators])
        chosen = next(
            ((u, d) for u, d in operators if str(u) not in entry.tried and u in allowed), None
        )
        if chosen is None:
            continue
        call = session.get(Call, entry.call_id)
        if call is None or call.status in TERMINAL_STATUSES or call.outcome is not None:
            # The caller is gone and the queue's action never told us: never offer it.
            entry.state = "done"
            entry.result = "hangup"
            entry.left_at = now
            continue
        operator_id, device = chosen
        # Two dispatchers (replicas) may have chosen the same operator: lock their presence
        # row, then look again (PostgreSQL; SQLite writers are serialised already).
        session.execute(
            select(OperatorPresence.user_id)
            .where(OperatorPresence.user_id == operator_id)
            .with_for_update()
        )
        busy_now = session.scalars(
            select(QueueEntry.call_id).where(
                QueueEntry.operator_id == operator_id,
                QueueEntry.state.in_(("offered", "connected")),
            )
        ).first()
        if busy_now is not None:
            return None  # the next pass chooses again
        entry.state = "offered"
        entry.operator_id = operator_id
        entry.offer_sid = None
        entry.offer_status = "initiated"
        entry.offered_at = now
        entry.attempts += 1
        entry.tried = [*entry.tried, str(operator_id)]
        session.flush()
        did = session.get(Did, call.did_id) if call.did_id else None
        if did is None:
            did = session.scalars(select(Did).where(Did.account_id == entry.account_id)).first()
        audit.record(
            session, "call.offered", "call", entry.call_id, details={"attempt": entry.attempts}
        )
        return Offer(
            entry.call_id,
            entry.account_id,
            operator_id,
            device,
            did.e164 if did is not None else "",
        )
    return None


def _failed(rt: Runtime, offer: Offer, code: str) -> None:
    with rt.db.session(context()) as s:
        entry = s.get(QueueEntry, offer.call_id)
        if entry is None or entry.state != "offered" or entry.operator_id != offer.operator_id:
            return
        entry.tried = [t for t in entry.tried if t != str(offer.operator_id)]
        queue.back_to_queue(s, entry, missed=False, reason=code)


def dispatch(rt: Runtime, api: Callable[[], CallsApi]) -> int:
    """Make every offer that can be made now; returns how many were placed."""
    made = 0
    settings = rt.settings
    with rt.db.session(context()) as s:
        now = utcnow()
        end_wrap_ups(s, settings, now)
        take_back_lost_offers(s, settings, now)
    for _ in range(MAX_OFFERS_PER_PASS):
        with rt.db.session(context()) as s:
            offer = next_offer(s, utcnow())
        if offer is None:
            break
        ids = {"c": str(offer.call_id), "o": str(offer.operator_id)}
        try:
            sid = api().create_call(
                to=offer.device,
                from_=offer.caller_id,
                url=queue.url(settings, provider(settings), "operator", **ids),
                status_callback=queue.url(settings, provider(settings), "offer-status", **ids),
                timeout=settings.telephony_ring_seconds,
            )
        except (ProviderFailed, ConfigurationError, httpx.HTTPError) as exc:
            code = getattr(exc, "code", None) or type(exc).__name__
            log.warning("routing: the offer could not be placed (%s); the call waits", code)
            _failed(rt, offer, "provider")
            break
        with rt.db.session(context()) as s:
            entry = s.get(QueueEntry, offer.call_id)
            # Telnyx gives no id here: the leg's first webhook names it (queue.offer_status).
            mine = entry is not None and entry.operator_id == offer.operator_id
            if sid and mine and entry is not None and not entry.offer_sid:
                entry.offer_sid = sid
        made += 1
    return made


def rest_api(rt: Runtime) -> Callable[[], CallsApi]:
    """The REST API of ``PERMANENCE_ROUTING_PROVIDER`` (built when first used)."""
    if rt.settings.routing_provider == "telnyx":
        return lambda: TelnyxTexmlApi.from_settings(rt.settings)
    return lambda: TwilioRestApi.from_settings(rt.settings)


def provider(settings: Settings) -> str:
    """The provider whose REST API places our calls: its name is in their webhooks' URLs,
    so that they are verified with its signature."""
    return settings.routing_provider


def tick(rt: Runtime) -> dict[str, int]:
    """One pass of the worker: wrap-ups ended, lost offers taken back, offers made."""
    if rt.settings.routing_mode != "queue":
        return {}
    return {"offers": dispatch(rt, rest_api(rt))}
