"""The queue as callers and operators hear it: TwiML for the provider's own queue.

The caller's leg: ``<Enqueue waitUrl=… action=…>QUEUE</Enqueue>`` (``enqueue``, one call from
the voice webhook). While they wait the provider fetches ``wait`` again and again: their
position (and the expected wait once the provider knows it) in their language, then the hold
audio; past the mandate's ``queue.max_wait_seconds`` the caller ``<Leave>``s the queue, and
``left`` (the ``<Enqueue>`` action) gives them voicemail. With the mandate's
``queue.callback_key`` all of it is inside a ``<Gather>``: the key takes the caller out of the
queue (``callback_key``) and the console lists the call-back to make (``routing.callbacks``).

The operator's leg is placed by the dispatcher (``routing.dispatch``) through the REST API;
when the operator answers, ``operator`` whispers the client's name to them and dials the queue
(``<Dial><Queue url=connect>QUEUE</Queue></Dial>``); ``connect`` runs on the caller the
provider took off the queue: the call is answered by that operator, whose console opens it.
``offer_status`` follows the operator's leg: ringing, answered, not answered (the next
operator is tried), over (wrap-up).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account
from permanence.audit import service as audit
from permanence.calls import outcome as outcomes
from permanence.calls import presence
from permanence.calls import service as calls
from permanence.calls.model import Call
from permanence.config import Settings
from permanence.db import ctx_of, switch_account, utcnow
from permanence.errors import Conflict, NotFound, ValidationFailed
from permanence.mandates.schema import Mandate
from permanence.routing.model import QueueEntry
from permanence.routing.rooms import HOLD_AUDIO, hold_twiml
from permanence.staff.training import require_trained
from permanence.telephony import twiml
from permanence.telephony.service import queues_calls
from permanence.telephony.webhook import Webhook

log = logging.getLogger("permanence.routing")

PROMPTS = {
    "fr": {
        "voice": "fr-FR",
        "first": "Vous êtes la première personne en attente.",
        "position": "Vous êtes la {n}e personne en attente.",
        "wait": "Temps d'attente estimé : environ {m} minute{s}.",
        "connect": "Nous vous mettons en relation.",
        "offer": "Pour être rappelé plutôt que de patienter, tapez {key}.",
        "noted": "C'est noté : nous vous rappelons dès qu'un conseiller est libre. Au revoir.",
    },
    "en": {
        "voice": "en-GB",
        "first": "You are first in the queue.",
        "position": "You are number {n} in the queue.",
        "wait": "The expected wait is about {m} minute{s}.",
        "connect": "Connecting you now.",
        "offer": "To be called back instead of waiting, press {key}.",
        "noted": "Thank you: we will call you back as soon as someone is free. Goodbye.",
    },
}
OPERATOR_GONE_FR = "Cet appel n'attend plus. Merci."
WHISPER_FR = "Appel pour {name}."


def url(settings: Settings, provider: str, name: str, **query: str) -> str:
    base = settings.public_base_url.rstrip("/")
    target = f"{base}/routing/{provider}/{name}"
    return f"{target}?{urlencode(query)}" if query else target


def queue_name(settings: Settings, account: Account, priority: bool) -> str:
    """The provider queue: one per account, or one shared (and a shared one for priority
    accounts, so that the provider's first-in-first-out never puts them behind others)."""
    if settings.routing_queue_scope == "shared":
        return "permanence-priority" if priority else "permanence"
    return f"permanence-{account.slug}"[:64]


@queues_calls
def enqueue(
    session: Session,
    settings: Settings,
    hook: Webhook,
    reply: twiml.Response,
    call: Call,
    mandate: Mandate,
) -> None:
    """The in-hours leg: the caller waits in the provider's queue (a retried webhook finds
    its entry)."""
    entry = session.get(QueueEntry, call.id)
    if entry is None:
        account = session.get(Account, call.account_id)
        assert account is not None
        now = utcnow()
        entry = QueueEntry(
            call_id=call.id,
            account_id=call.account_id,
            caller_sid=call.provider_sid or str(call.id),
            queue_name=queue_name(settings, account, mandate.queue.priority),
            priority=1 if mandate.queue.priority else 0,
            state="queued",
            enqueued_at=now,
            deadline_at=now + dt.timedelta(seconds=mandate.queue.max_wait_seconds),
            attempts=0,
            tried=[],
        )
        session.add(entry)
        session.flush()
        audit.record(session, "call.queued", "call", call.id, details={"priority": entry.priority})
    ids = {"a": str(call.account_id), "c": str(call.id)}
    el = ET.SubElement(
        reply.root,
        "Enqueue",
        waitUrl=url(settings, hook.provider, "wait", **ids),
        waitUrlMethod="POST",
        action=url(settings, hook.provider, "left", **ids),
        method="POST",
    )
    el.text = entry.queue_name


def _caller_entry(session: Session, hook: Webhook) -> tuple[QueueEntry, Call]:
    """The entry and call named by our URL, checked against the caller's CallSid."""
    account_id = hook.query_uuid("a")
    call_id = hook.query_uuid("c")
    entry = session.get(QueueEntry, call_id)
    if entry is None or entry.account_id != account_id or entry.caller_sid != hook.sid("CallSid"):
        raise NotFound("no such queued call")
    switch_account(session, account_id)
    call = session.get(Call, call_id)
    if call is None:
        raise NotFound("no such queued call")
    return entry, call


def _count(hook: Webhook, name: str) -> int | None:
    value = hook.get(name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 6:
        raise ValidationFailed(f"{name} must be a whole number")
    return int(value)


def wait(session: Session, settings: Settings, hook: Webhook) -> str:
    """The caller's waiting music: position, expected wait, hold audio; or, past the
    mandate's longest wait, ``<Leave/>`` (then ``left`` gives voicemail)."""
    entry, call = _caller_entry(session, hook)
    reply = twiml.Response()
    now = utcnow()
    if entry.state == "done":
        ET.SubElement(reply.root, "Leave")
        return reply.xml()
    if entry.state == "queued" and now >= entry.deadline_at:
        entry.result = "overflow"
        audit.record(session, "call.queue_overflow", "call", call.id)
        ET.SubElement(reply.root, "Leave")
        return reply.xml()
    lang = call.language if call.language in PROMPTS else "fr"
    prompts = PROMPTS[lang]
    position = _count(hook, "QueuePosition")
    average = _count(hook, "AvgQueueTime")
    # With a call-back key (and a number to call back), everything the caller hears is inside
    # a <Gather>: a key pressed during the position, the wait or the hold audio is taken.
    key = _callback_key(session, call) if entry.state == "queued" else None
    parent = reply.root
    if key is not None:
        ids = {"a": str(call.account_id), "c": str(call.id)}
        parent = ET.SubElement(
            reply.root,
            "Gather",
            action=url(settings, hook.provider, "callback-key", **ids),
            method="POST",
            numDigits="1",
            timeout="1",
        )
    if position is not None and position >= 1:
        text = prompts["first"] if position == 1 else prompts["position"].format(n=position)
        reply.say(text, language=prompts["voice"], parent=parent)
    if average:  # the provider's average wait, once it has one
        minutes = max(1, round(average / 60))
        reply.say(
            prompts["wait"].format(m=minutes, s="s" if minutes > 1 else ""),
            language=prompts["voice"],
            parent=parent,
        )
    if key is not None:
        reply.say(prompts["offer"].format(key=key), language=prompts["voice"], parent=parent)
    base = settings.public_base_url.rstrip("/")
    ET.SubElement(parent, "Play").text = base + HOLD_AUDIO
    return reply.xml()


def _callback_key(session: Session, call: Call) -> str | None:
    """The mandate's call-back key, when the caller's number is known (else nobody to call)."""
    if call.from_sealed is None:
        return None
    from permanence.accounts.service import mandate_by_id

    return mandate_by_id(session, call.mandate_id)[1].queue.callback_key


def callback_key(session: Session, settings: Settings, hook: Webhook) -> str:
    """The waiting music's ``<Gather>`` action. The call-back key: the caller leaves the
    queue (``<Leave/>``, then ``left`` says goodbye) and the console lists the call-back to
    make (``routing.callbacks.pending``). Any other key, or a call already offered to an
    operator: back to the waiting music."""
    entry, call = _caller_entry(session, hook)
    reply = twiml.Response()
    lang = call.language if call.language in PROMPTS else "fr"
    prompts = PROMPTS[lang]
    digits = hook.get("Digits")
    key = _callback_key(session, call)
    if key is None or digits != key or entry.state != "queued":
        ids = {"a": str(call.account_id), "c": str(call.id)}
        reply.redirect(url(settings, hook.provider, "wait", **ids))
        return reply.xml()
    now = utcnow()
    entry.state = "done"
    entry.result = "callback"  # routing.callbacks.REQUESTED
    entry.left_at = now
    # Its call-back is a new offer (routing.dispatch): to any operator, whoever missed the call.
    entry.tried = []
    entry.offer_status = None
    call.ended_reason = outcomes.CALLBACK_REASON  # its outcome: callback_request
    audit.record(session, "call.callback_requested", "call", call.id)
    reply.say(prompts["noted"], language=prompts["voice"])
    ET.SubElement(reply.root, "Leave")
    return reply.xml()


def left(session: Session, settings: Settings, hook: Webhook) -> str:
    """The ``<Enqueue>`` action: the caller left the queue. ``bridged``: they spoke to an
    operator (the call is over for the operator: wrap-up); ``leave`` (the longest wait) or an
    error: voicemail; ``hangup``: they gave up."""
    from permanence.telephony import service as telephony

    entry, call = _caller_entry(session, hook)
    result = hook.get("QueueResult") or "error"
    reply = twiml.Response()
    if result == "redirected":
        return reply.xml()
    if entry.state == "connected" and entry.consult_target is not None:
        # A warm transfer took the operator out of the bridge: the caller holds meanwhile.
        hold_twiml(settings, reply, call.id)
        return reply.xml()
    if entry.state == "connected":
        finish(session, entry, call)
    elif entry.state == "offered" and entry.offer_sid:
        # An operator's line still rings for a caller who is gone: stop it (after the reply).
        session.info["cancel_offer"] = entry.offer_sid
        entry.operator_id = None
    if entry.result == "callback":  # the caller asked to be called back: nothing to add
        reply.hangup()
        return reply.xml()
    if result == "bridged":
        entry.result = entry.result or "bridged"
    elif result == "hangup":
        entry.result = "hangup"
    else:
        entry.result = "overflow" if result == "leave" else "error"
    if entry.state != "done":
        entry.state = "done"
        entry.left_at = utcnow()
    if entry.result in ("overflow", "error") and call.answered_at is None:
        # Nobody took the call in time: voicemail, as when nobody answers a <Dial>.
        voicemail = Webhook(
            provider=hook.provider,
            form={
                "CallSid": hook.sid("CallSid"),
                "DialCallStatus": "no-answer",
                "CallStatus": "in-progress",
            },
            query={"a": str(call.account_id), "c": str(call.id)},
        )
        return telephony.dial_done(session, settings, voicemail)
    reply.hangup()
    return reply.xml()


def finish(session: Session, entry: QueueEntry, call: Call) -> None:
    """The operator's conversation is over (either leg said so first): talk time, and the
    operator's wrap-up starts."""
    if entry.state != "connected":
        return
    now = utcnow()
    entry.state = "done"
    entry.left_at = now
    entry.result = entry.result or "bridged"
    if call.answered_at is not None and call.talk_s is None:
        call.talk_s = max(0, round((now - call.answered_at).total_seconds()))
    outcomes.settle(call)
    presence.call_completed(session, call, now)


# -- the operator's leg ---------------------------------------------------------------------


def _offered(session: Session, hook: Webhook) -> tuple[QueueEntry, uuid.UUID]:
    """The entry this operator's leg is for: by the leg's own id first (two offers may have
    been swapped by ``connect``), else by the call our URL names."""
    leg = hook.sid("CallSid")
    entry = session.scalars(select(QueueEntry).where(QueueEntry.offer_sid == leg)).first()
    if entry is None:
        entry = session.get(QueueEntry, hook.query_uuid("c"))
    if entry is None:
        raise NotFound("no such queued call")
    return entry, hook.query_uuid("o")


def operator(session: Session, settings: Settings, hook: Webhook) -> str:
    """The operator answered their device: whisper the client's name, then take the caller
    off the queue (recorded if the caller heard the recording notice and did not object)."""
    entry, operator_id = _offered(session, hook)
    leg = hook.sid("CallSid")
    reply = twiml.Response()
    if entry.offer_sid is None and entry.operator_id == operator_id:
        entry.offer_sid = leg  # the operator answered before the REST reply was stored
    if entry.state != "offered" or entry.operator_id != operator_id or entry.offer_sid != leg:
        reply.say(OPERATOR_GONE_FR)
        reply.hangup()
        return reply.xml()
    entry.offer_status = "answered"
    account = session.get(Account, entry.account_id)
    assert account is not None
    switch_account(session, entry.account_id)
    call = session.get(Call, entry.call_id)
    assert call is not None
    reply.say(WHISPER_FR.format(name=account.name))
    ids = {"a": str(entry.account_id), "c": str(entry.call_id)}
    attrs = {}
    if call.recording_state == "recording":
        attrs = {
            "record": "record-from-answer-dual",
            "recordingStatusCallback": url(settings, hook.provider, "recording", **ids),
            "recordingStatusCallbackMethod": "POST",
            "recordingStatusCallbackEvent": "completed absent",
        }
    dial = ET.SubElement(reply.root, "Dial", attrs)
    queue = ET.SubElement(
        dial,
        "Queue",
        url=url(settings, hook.provider, "connect", o=str(operator_id)),
        method="POST",
    )
    queue.text = entry.queue_name
    return reply.xml()


def connect(session: Session, hook: Webhook) -> str:
    """The ``<Queue url>``: run on the caller the provider took off the queue for operator
    ``o``. That caller may not be the one offered (two offers of one queue answered in the
    other order): the two offers are swapped, so each entry names who really has it."""
    operator_id = hook.query_uuid("o")
    caller_sid = hook.sid("CallSid")
    taken = session.scalars(select(QueueEntry).where(QueueEntry.caller_sid == caller_sid)).first()
    if taken is None:
        raise NotFound("no such queued call")
    offered = session.scalars(
        select(QueueEntry).where(
            QueueEntry.operator_id == operator_id, QueueEntry.state == "offered"
        )
    ).first()
    leg = hook.get("DequeuingCallSid")
    if offered is not None and offered is not taken:
        if taken.state == "offered":
            swap = (taken.operator_id, taken.offer_sid, taken.offer_status, taken.offered_at)
            leg = leg or offered.offer_sid
            offered.offer_sid = taken.offer_sid = None  # the leg ids are unique: free them first
            session.flush()
            (offered.operator_id, offered.offer_sid, offered.offer_status, offered.offered_at) = (
                swap
            )
        else:
            leg = leg or offered.offer_sid
            offered.state = "queued"
            offered.operator_id = None
            offered.offer_sid = None
            offered.offer_status = None
            session.flush()
    now = utcnow()
    taken.state = "connected"
    taken.operator_id = operator_id
    taken.offer_sid = leg or taken.offer_sid
    taken.offer_status = "answered"
    taken.connected_at = now
    session.flush()
    switch_account(session, taken.account_id)
    call = session.get(Call, taken.call_id)
    assert call is not None
    call.status = "in-progress"
    call.answered_at = call.answered_at or now
    call.operator_id = operator_id
    outcomes.settle(call)
    audit.record(
        session, "call.answer", "call", call.id, subject_id=call.caller_id, details={"via": "queue"}
    )
    presence.move(session, operator_id, "on_call", now, call.id)
    lang = call.language if call.language in PROMPTS else "fr"
    reply = twiml.Response()
    reply.say(PROMPTS[lang]["connect"], language=PROMPTS[lang]["voice"])
    return reply.xml()


MISSED = frozenset({"no-answer", "busy", "failed", "canceled"})


def offer_status(session: Session, hook: Webhook) -> bool:
    """The operator's leg's status callback. Returns True when the call went back to the
    queue (the dispatcher should offer it to the next operator)."""
    entry, operator_id = _offered(session, hook)
    leg = hook.sid("CallSid")
    status = hook.require("CallStatus")
    if entry.operator_id != operator_id or entry.offer_sid not in (None, leg):
        return False  # an old offer's late news
    if entry.state == "offered":
        entry.offer_sid = entry.offer_sid or leg
        if status in ("initiated", "queued", "ringing"):
            entry.offer_status = "ringing"
            return False
        if status == "in-progress":
            entry.offer_status = "answered"
            return False
        back_to_queue(session, entry, missed=status in MISSED, reason=status)
        return True
    if entry.state == "connected" and status in ("completed", *MISSED):
        switch_account(session, entry.account_id)
        call = session.get(Call, entry.call_id)
        assert call is not None
        finish(session, entry, call)
    return False


def back_to_queue(session: Session, entry: QueueEntry, *, missed: bool, reason: str) -> None:
    """The offer did not end in a conversation: the call waits again. An operator who let it
    ring out is paused (they may have left their desk), so the next call is not offered to
    an empty chair; they make themselves available again from the console."""
    operator_id = entry.operator_id
    switch_account(session, entry.account_id)
    entry.state = "queued"
    entry.operator_id = None
    entry.offer_sid = None
    entry.offer_status = None
    session.flush()
    audit.record(
        session, "call.offer_missed", "call", entry.call_id, details={"reason": reason[:16]}
    )
    if missed and operator_id is not None:
        presence.move(session, operator_id, "break", utcnow())


def take_from_queue(session: Session, call_id: uuid.UUID) -> Call:
    """The operator takes a ringing call from the console's list: answered, and theirs; a
    call someone else took already is a Conflict, and so is one the provider's queue holds
    (it is offered to an available operator: ``routing.dispatch``)."""
    require_trained(session, ctx_of(session))
    call = calls.get_call(session, call_id)
    session.refresh(call, with_for_update=True)  # two operators clicking at once
    if call.status != "ringing":
        raise Conflict("this call has already been taken")
    if session.get(QueueEntry, call.id) is not None:  # the queue offers it (routing.dispatch)
        raise Conflict("this call waits in the queue: it is offered to an available operator")
    calls.answer(session, call)
    return call
