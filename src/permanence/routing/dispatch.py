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

A call-back a caller asked for in the queue keeps their place: it stays in the same order
(priority, then the time they joined the queue) as the calls still waiting, and when it is
the first an available operator may take, it is offered to that operator like a call — the
REST API rings the operator's line, then the person (``routing.callbacks.place``), and the
console opens the caller's screen pop once the operator answers.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from permanence.accounts.model import Did
from permanence.audit import service as audit
from permanence.calls import presence
from permanence.calls.model import TERMINAL_STATUSES, Call
from permanence.calls.presence_model import OperatorPresence
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.db import switch_account, utcnow
from permanence.errors import ConfigurationError, PermanenceError
from permanence.needtoknow import service as needtoknow
from permanence.routing import callbacks, queue
from permanence.routing.model import OperatorLine, QueueEntry
from permanence.runtime import Runtime
from permanence.staff import training
from permanence.staff.auth import IDLE_TIMEOUT
from permanence.staff.model import User, WebSession
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
    # A call-back asked for in the queue (routing.callbacks), made by this operator.
    callback_role: Role | None = None


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
    lost = session.scalars(
        select(QueueEntry).where(
            QueueEntry.result == callbacks.OFFERED,
            QueueEntry.offered_at <= now - limit,
            QueueEntry.offer_status == callbacks.RINGING,
        )
    ).all()
    for entry in lost:  # a call-back's operator leg no news came of
        callbacks.release(session, entry.call_id, None)
    return len(rows) + len(lost)


def _busy() -> Any:
    """Operators offered a call, on one through the queue, or being offered a call-back."""
    return select(QueueEntry.operator_id).where(
        or_(
            QueueEntry.state.in_(("offered", "connected")),
            QueueEntry.result == callbacks.OFFERED,
        ),
        QueueEntry.operator_id.is_not(None),
    )


def available_operators(session: Session, now: dt.datetime) -> list[tuple[uuid.UUID, str]]:
    """Operators who may be offered a call now, longest idle first, with their device."""
    live = select(WebSession.user_id).where(
        WebSession.expires_at > now, WebSession.last_seen_at >= now - IDLE_TIMEOUT
    )
    busy = _busy()
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
    # Call-backs asked for in the queue keep their place among the waiting calls.
    asked = session.scalars(
        select(QueueEntry)
        .where(
            QueueEntry.result == callbacks.REQUESTED,
            or_(
                QueueEntry.offer_status.is_(None),
                QueueEntry.offer_status != callbacks.UNREACHED,
            ),
        )
        .order_by(QueueEntry.priority.desc(), QueueEntry.enqueued_at)
        .limit(MAX_OFFERS_PER_PASS)
        .with_for_update(skip_locked=True)
    ).all()
    entries = sorted([*entries, *asked], key=lambda e: (-e.priority, e.enqueued_at))
    for entry in entries:
        switch_account(session, entry.account_id)
        # A health-data account on a need-to-know basis is offered to its assigned operators.
        allowed = needtoknow.may_answer(session, entry.account_id, [u for u, _d in operators])
        chosen = next(
            ((u, d) for u, d in operators if str(u) not in entry.tried and u in allowed), None
        )
        if chosen is None:
            continue
        operator_id, device = chosen
        if entry.result == callbacks.REQUESTED:
            if not _lock_free(session, operator_id):
                return None
            return _offer_callback(session, entry, operator_id, device, now)
        call = session.get(Call, entry.call_id)
        if call is None or call.status in TERMINAL_STATUSES or call.outcome is not None:
            # The caller is gone and the queue's action never told us: never offer it.
            entry.state = "done"
            entry.result = "hangup"
            entry.left_at = now
            continue
        if not _lock_free(session, operator_id):
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


def _lock_free(session: Session, operator_id: uuid.UUID) -> bool:
    """Two dispatchers (replicas) may have chosen the same operator: lock their presence
    row, then look again (PostgreSQL; SQLite writers are serialised already)."""
    session.execute(
        select(OperatorPresence.user_id)
        .where(OperatorPresence.user_id == operator_id)
        .with_for_update()
    )
    busy_now = session.scalars(_busy().where(QueueEntry.operator_id == operator_id)).first()
    return busy_now is None


def _offer_callback(
    session: Session, entry: QueueEntry, operator_id: uuid.UUID, device: str, now: dt.datetime
) -> Offer | None:
    """Reserve the call-back for the operator (routing.callbacks.reserve's state), before any
    REST call: no other dispatcher, nor the console's list, makes it meanwhile."""
    user = session.get(User, operator_id)
    if user is None:
        return None
    entry.result = callbacks.OFFERED
    entry.operator_id = operator_id
    entry.offer_status = callbacks.RINGING
    entry.offered_at = now
    entry.tried = [*entry.tried, str(operator_id)]
    session.flush()
    audit.record(session, "call.callback_offered", "call", entry.call_id)
    return Offer(entry.call_id, entry.account_id, operator_id, device, "", Role(user.role))


def _place_callback(rt: Runtime, offer: Offer, api: Callable[[], CallsApi]) -> bool:
    """Make the call-back offered (the operator's line, then the person); False when it
    could not be placed (the request is back on the list)."""
    ctx = AccessContext(
        role=offer.callback_role or Role.OPERATOR,
        reason="routing:dispatch",
        actor_id=offer.operator_id,
        account_id=offer.account_id,
    )
    try:
        callbacks.place(rt, ctx, offer.call_id, api, offered=True)
    except ProviderFailed:
        log.warning("routing: the call-back could not be placed; it waits")
        return False  # released by place, for this operator too
    except PermanenceError as exc:
        log.warning("routing: the call-back was not offered (%s)", type(exc).__name__)
        with rt.db.session(context()) as s:
            callbacks.release(s, offer.call_id, offer.operator_id)
        return False
    return True


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
        if offer.callback_role is not None:
            if not _place_callback(rt, offer, api):
                break
            made += 1
            continue
        ids = {"c": str(offer.call_id), "o": str(offer.operator_id)}
        import httpx

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
