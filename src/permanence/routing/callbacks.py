"""Call-backs: an operator calls back a caller for the client (docs/telephony.md, ADR 0030).

One action from the console — on a voicemail, or on a call-back the caller asked for in the
queue (``request``) — and the provider's REST API places a call to the operator's own device
(``place``). When the operator answers, ``operator_twiml`` whispers the client's name and
dials the person, showing the client's number (a DID of the account) as caller id. The
outbound call is a call of the account: ``calls.direction = "outbound"`` and
``calls.routing = "outbound"`` (so the statistics count it in their one index-only pass), its
own outcome (``answered`` once the person picked up, else ``failed``), audited at each step.

The person's number never leaves the database except in the TwiML the provider fetches to
dial it: it is sealed on the outbound call (``calls.from_sealed`` holds the other party's
number, as for an inbound call) and our URLs carry only ids, signed by the provider.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account, Did
from permanence.accounts.service import mandate_version
from permanence.audit import service as audit
from permanence.calls import outcome as outcomes
from permanence.calls import presence
from permanence.calls import service as calls
from permanence.calls.hours import OUTBOUND
from permanence.calls.model import TERMINAL_STATUSES, Call
from permanence.calls.presence_model import OperatorPresence
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.crypto.keyring import Keyring
from permanence.db import acting_for, switch_account, utcnow
from permanence.errors import ConfigurationError, Conflict, NotFound, ValidationFailed
from permanence.needtoknow import service as needtoknow
from permanence.routing import queue
from permanence.routing.model import OperatorLine, QueueEntry
from permanence.runtime import Runtime
from permanence.staff.training import require_trained
from permanence.telephony import twiml
from permanence.telephony.ports import CallsApi, ProviderFailed
from permanence.telephony.service import CALL_STATUSES, apply_status
from permanence.telephony.webhook import Webhook

log = logging.getLogger("permanence.routing")

# QueueEntry.result of a caller who pressed the call-back key, while an operator is calling
# them back (the dispatcher's offer or the console's action: one at a time), then once called
# back.
REQUESTED = "callback"
OFFERED = "callback_offer"
CALLED_BACK = "called_back"
# QueueEntry.offer_status of a request while it is offered (the operator's line rings, then
# they answered), and once the person was rung and did not pick up: the dispatcher offers it
# no more (ringing the person again and again), the console's list keeps it.
RINGING = "initiated"
TAKEN = "answered"
UNREACHED = "unreached"
WHISPER_FR = "Rappel pour {name}. Nous appelons la personne."
NO_ANSWER_FR = "La personne ne répond pas. L'appel est terminé."
# How long the person's phone rings.
PERSON_RING_SECONDS = 30
ANSWERING = (Role.OPERATOR, Role.SUPERVISOR)


@dataclass(frozen=True)
class Pending:
    """A call-back a caller asked for in the queue and nobody has made yet (no personal data:
    the console links to the call-back action by ids)."""

    call_id: uuid.UUID
    account_id: uuid.UUID
    account_name: str
    asked_at: dt.datetime


def pending(session: Session, user_id: uuid.UUID, limit: int = 50) -> list[Pending]:
    """Call-backs asked for in the queue, oldest first, that ``user_id`` may make (a
    health-data account on need-to-know: its assigned operators). ``call_queue`` is outside
    row-level security, like the queue itself: the console's list spans the accounts."""
    rows = session.execute(
        select(QueueEntry.call_id, QueueEntry.account_id, QueueEntry.left_at)
        .where(QueueEntry.result == REQUESTED)
        .order_by(QueueEntry.left_at)
        .limit(limit)
    ).all()
    out = []
    for call_id, account_id, at in rows:
        with acting_for(session, account_id):
            if user_id not in needtoknow.may_answer(session, account_id, [user_id]):
                continue
            account = session.get(Account, account_id)
        if account is not None:
            out.append(Pending(call_id, account_id, account.name, at or utcnow()))
    return out


def _number(session: Session, keyring: Keyring, source: Call) -> tuple[str, uuid.UUID]:
    """The number to call back (the one the caller called from, sealed on their call) and
    the caller's id."""
    if source.from_sealed is None or source.caller_id is None:
        raise ValidationFailed("this caller's number is not known: there is nobody to call back")
    cipher = keyring.cipher(session, source.account_id, source.caller_id)
    return cipher.open_text("calls", "from", source.id, source.from_sealed), source.caller_id


def _did(session: Session, source: Call) -> Did:
    did = session.get(Did, source.did_id) if source.did_id else None
    if did is None:
        did = session.scalars(select(Did).where(Did.account_id == source.account_id)).first()
    if did is None:
        raise Conflict("the account has no number to present as caller id")
    return did


def place(
    rt: Runtime,
    ctx: AccessContext,
    source_id: uuid.UUID,
    api: Callable[[], CallsApi],
    *,
    offered: bool = False,
) -> uuid.UUID:
    """Call back the caller of call ``source_id`` (a voicemail's call, or one who asked for a
    call-back in the queue): ring the signed-in operator's device, which then dials the person.
    ``offered``: the dispatcher offers it (an operator who lets it ring out is paused, as for
    a queued call). Returns the outbound call's id."""
    if ctx.role not in ANSWERING or ctx.actor_id is None:
        raise Conflict("only operators and supervisors make call-backs")
    operator_id = ctx.actor_id
    with rt.db.session(ctx) as s:
        source = calls.get_call(s, source_id)  # another account's call: 404
        require_trained(s, ctx)
        line = s.get(OperatorLine, operator_id)
        if line is None:
            raise Conflict("set your line (device) before calling back: ask an administrator")
        number, caller_id = _number(s, rt.keyring, source)
        did = _did(s, source)
        reserve(s, source.id, operator_id)
        mandate_row, _mandate = mandate_version(s, source.account_id)
        call = Call(
            id=uuid.uuid4(),
            account_id=source.account_id,
            caller_id=caller_id,
            did_id=did.id,
            mandate_id=mandate_row.id,
            direction=OUTBOUND,
            routing=OUTBOUND,
            status="queued",
            provider=rt.settings.routing_provider,
            operator_id=operator_id,
            language=source.language,
            started_at=utcnow(),
        )
        cipher = rt.keyring.cipher(s, source.account_id, caller_id)
        call.from_sealed = cipher.seal_text("calls", "from", call.id, number)
        s.add(call)
        s.flush()
        audit.record(
            s,
            "call.callback",
            "call",
            call.id,
            subject_id=call.caller_id,
            details={"source": str(source.id)},
        )
        presence.move(s, operator_id, "on_call", call.started_at, call.id)
        account_id, device, from_ = call.account_id, line.device, did.e164
    ids = {"a": str(account_id), "c": str(call.id), "s": str(source_id)}
    if offered:
        ids["d"] = "1"
    name = rt.settings.routing_provider  # its signature verifies the webhooks
    import httpx

    try:
        sid = api().create_call(
            to=device,
            from_=from_,
            url=queue.url(rt.settings, name, "callback", **ids),
            status_callback=queue.url(rt.settings, name, "callback-status", **ids),
            timeout=rt.settings.telephony_ring_seconds,
        )
    except (ProviderFailed, ConfigurationError, httpx.HTTPError) as exc:
        code = getattr(exc, "code", None) or type(exc).__name__
        log.warning("routing: the call-back could not be placed (%s)", code)
        with rt.db.session(ctx) as s:
            failed = calls.get_call(s, call.id)
            failed.ended_reason = "provider"
            apply_status(s, failed, "failed", None)
            presence.move(s, operator_id, "free", utcnow())
            release(s, source_id, operator_id, tried=False)
        raise ProviderFailed("the provider did not place the call-back; try again") from None
    with rt.db.session(ctx) as s:
        placed = calls.get_call(s, call.id)
        placed.provider_sid = placed.provider_sid or sid or None  # Telnyx: its first webhook
    return call.id


def reserve(session: Session, source_id: uuid.UUID, operator_id: uuid.UUID) -> None:
    """A call-back asked for in the queue is being made by ``operator_id``: it leaves the
    list and the dispatcher's offers until it ends (one operator at a time). Already being
    made by another: 409. A call that is not a request (a voicemail's): nothing to do."""
    entry = session.get(QueueEntry, source_id)
    if entry is None or entry.result not in (REQUESTED, OFFERED):
        return
    if entry.result == OFFERED and entry.operator_id != operator_id:
        raise Conflict("another operator is already calling this caller back")
    if entry.result == REQUESTED:  # from the console's list (the dispatcher reserved already)
        entry.result = OFFERED
        entry.operator_id = operator_id
        entry.offer_status = RINGING
        entry.offered_at = utcnow()
        entry.tried = [*entry.tried, str(operator_id)]


def release(
    session: Session,
    source_id: uuid.UUID,
    operator_id: uuid.UUID | None,
    *,
    tried: bool = True,
    unreached: bool = False,
) -> None:
    """The call-back being made ended without the person: the request is back on the list
    (and, unless the person was rung, offered to the next available operator; ``tried``
    keeps this operator from being offered it again)."""
    entry = session.get(QueueEntry, source_id)
    if entry is None or entry.result != OFFERED:
        return
    if operator_id is not None and entry.operator_id != operator_id:
        return
    entry.result = REQUESTED
    entry.operator_id = None
    entry.offer_status = UNREACHED if unreached else None
    if not tried and operator_id is not None:
        entry.tried = [t for t in entry.tried if t != str(operator_id)]


def _source(hook: Webhook) -> uuid.UUID | None:
    source = hook.query.get("s")
    return uuid.UUID(source) if _is_uuid(source) else None


def _outbound(session: Session, hook: Webhook) -> Call:
    """The outbound call our URL names, checked against the provider's CallSid (the REST
    reply may come after the provider's first webhook: an unset sid is taken)."""
    account_id = hook.query_uuid("a")
    switch_account(session, account_id)
    call = session.get(Call, hook.query_uuid("c"))
    leg = hook.sid("CallSid")
    if call is None or call.account_id != account_id or call.direction != OUTBOUND:
        raise NotFound("no such call-back")
    if call.provider_sid is None:
        call.provider_sid = leg
    elif call.provider_sid != leg:
        raise NotFound("no such call-back")
    return call


def operator_twiml(session: Session, settings: Settings, keyring: Keyring, hook: Webhook) -> str:
    """The operator answered their device: the client's name, then the person, with the
    client's number shown."""
    call = _outbound(session, hook)
    reply = twiml.Response()
    if call.status in TERMINAL_STATUSES:
        reply.hangup()
        return reply.xml()
    account = session.get(Account, call.account_id)
    did = session.get(Did, call.did_id) if call.did_id else None
    if account is None or did is None or call.from_sealed is None or call.caller_id is None:
        raise NotFound("no such call-back")
    call.status = "in-progress"
    source = _source(hook)
    entry = session.get(QueueEntry, source) if source is not None else None
    if entry is not None and entry.result == OFFERED and entry.operator_id == call.operator_id:
        entry.offer_status = TAKEN  # the operator took it: the screen pop opens (pages)
    cipher = keyring.cipher(session, call.account_id, call.caller_id)
    number = cipher.open_text("calls", "from", call.id, call.from_sealed)
    reply.say(WHISPER_FR.format(name=account.name))
    ids = {k: hook.query[k] for k in ("a", "c", "s", "d") if k in hook.query}
    dial = ET.SubElement(
        reply.root,
        "Dial",
        callerId=did.e164,
        timeout=str(PERSON_RING_SECONDS),
        action=queue.url(settings, hook.provider, "callback-done", **ids),
        method="POST",
    )
    ET.SubElement(dial, "Number").text = number
    return reply.xml()


def done(session: Session, hook: Webhook) -> str:
    """The ``<Dial>`` action: the person's leg is over. Answered: talk time, and a call-back
    the caller asked for in the queue is made; not answered: the operator is told so."""
    call = _outbound(session, hook)
    reply = twiml.Response()
    dialled = hook.get("DialCallStatus") or "failed"
    if dialled in ("completed", "answered"):
        talk = hook.seconds("DialCallDuration")
        call.talk_s = talk
        if call.answered_at is None:
            call.answered_at = utcnow() - dt.timedelta(seconds=talk or 0)
        outcomes.settle(call)
        audit.record(session, "call.answered", "call", call.id, details={"talk_s": talk})
        source = _source(hook)
        entry = session.get(QueueEntry, source) if source is not None else None
        asked = (REQUESTED, OFFERED)
        if entry is not None and entry.account_id == call.account_id and entry.result in asked:
            entry.result = CALLED_BACK
            entry.operator_id = call.operator_id
        reply.hangup()
        return reply.xml()
    call.ended_reason = dialled[:32]
    source = _source(hook)
    if source is not None:  # the person did not pick up: back on the list, not offered again
        release(session, source, call.operator_id, unreached=True)
    audit.record(
        session, "call.callback_unanswered", "call", call.id, details={"dial": dialled[:16]}
    )
    reply.say(NO_ANSWER_FR)
    reply.hangup()
    return reply.xml()


def _is_uuid(value: str | None) -> bool:
    try:
        uuid.UUID(value or "")
    except ValueError:
        return False
    return True


def status(session: Session, hook: Webhook) -> None:
    """The operator's leg's status callback: the call-back's final status, the operator's
    wrap-up (or back to available when they never answered)."""
    call = _outbound(session, hook)
    new = hook.require("CallStatus")
    if new not in CALL_STATUSES and new != "initiated":
        raise ValidationFailed("CallStatus is not a known call status")
    if not apply_status(session, call, new, hook.seconds("CallDuration")):
        return
    source = _source(hook)
    if new in TERMINAL_STATUSES and source is not None:
        # Over before the person answered (the operator never took it): the next operator.
        release(session, source, call.operator_id)
    if new in TERMINAL_STATUSES and call.operator_id is not None:
        now = utcnow()
        if call.answered_at is not None:
            if call.talk_s is None:
                call.talk_s = max(0, round((now - call.answered_at).total_seconds()))
            presence.call_completed(session, call, now)
        else:  # the operator never took it: available again, if this call is what they were on
            row = session.get(OperatorPresence, call.operator_id)
            if row is not None and row.state == "on_call" and row.call_id == call.id:
                # Offered by the dispatcher and let ring out: paused, as for a queued call
                # (they may have left their desk); else (their own action) available again.
                rang_out = hook.query.get("d") == "1" and new in ("no-answer", "busy")
                presence.move(session, call.operator_id, "break" if rang_out else "free", now)
