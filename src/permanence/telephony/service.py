"""The voice webhooks' use cases: the call flow in TwiML, the call lifecycle, recordings.

Flow (docs/telephony.md): the incoming call is routed by its dialled number (``To``) to the
client account; the reply says the mandate's layer-1 notice in French and, where the policy
records this call, the recording notice inside a ``<Gather>`` so the caller can press the
objection key; then the call is offered to the operators (``<Dial>``, recorded only if the
caller did not object); when nobody answers, voicemail. Before all this the mandate's opening
hours decide where the call goes (``calls.hours.decide``): out of hours, the after-hours
greeting then voicemail, or the on-call contact in force (``<Dial>`` to their number after
the on-call notice), or the operators all the same for a 24/7 client.

Webhooks act with a SYSTEM context (``telephony:<provider>``): they are authenticated by the
provider's signature (checked by the route), and switch to the call's account once routed.
Follow-up URLs carry our account and call ids (pseudonymous, covered by the signature) so a
callback without ``To`` — the recording status callback — still finds its call under
row-level security.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.service import account_for_did, mandate_by_id
from permanence.audit import service as audit
from permanence.calls import hours as routing
from permanence.calls import notice_sms
from permanence.calls import outcome as outcomes
from permanence.calls import service as calls
from permanence.calls.model import EXPIRED_STATUS, TERMINAL_STATUSES, Call
from permanence.config import Settings
from permanence.crypto import normalize
from permanence.crypto.keyring import Keyring
from permanence.db import switch_account, utcnow
from permanence.errors import Conflict, NotFound, ValidationFailed
from permanence.mandates.hours import (
    DEFAULT_FORWARD_NOTICE,
    DEFAULT_GREETING,
    AfterHours,
    AfterHoursAction,
)
from permanence.mandates.mandate import Mandate
from permanence.slots import Slot
from permanence.telephony import twiml
from permanence.telephony.webhook import Webhook, call_from_query

log = logging.getLogger("permanence.telephony")

CALL_STATUSES = frozenset({"queued", "ringing", "in-progress", *TERMINAL_STATUSES})
# How many times the recording notice is said again to a caller pressing keys other than the
# objection key; after that the notice was never heard whole and the call is not recorded.
NOTICE_REPEATS = 2

NOT_ASSIGNED_FR = "Ce numéro n'est pas attribué. Au revoir."
UNAVAILABLE_FR = (
    "Nos opératrices et opérateurs sont tous occupés. Laissez votre message après le bip, "
    "nous vous rappellerons."
)
# Prompts in each language a mandate may offer (``notice.english_key``), and the voice's tag.
PROMPTS = {
    "fr": {
        "voice": "fr-FR",
        "unavailable": UNAVAILABLE_FR,
        "sms_sent": "Le détail vous est envoyé par SMS.",
        "sms_unavailable": "L'envoi par SMS n'est pas possible pour cet appel ; "
        "demandez l'adresse à votre interlocuteur.",
    },
    "en": {
        "voice": "en-GB",
        "unavailable": "All our operators are busy. Please leave a message after the tone and "
        "we will call you back.",
        "sms_sent": "The full details are being sent to you by text message.",
        "sms_unavailable": "We cannot send a text message for this call; ask the person you "
        "speak to for the address.",
        "choose": "For English, press {key}.",
    },
}


def _url(settings: Settings, hook: Webhook, name: str, **query: str) -> str:
    base = settings.public_base_url.rstrip("/")
    url = f"{base}/telephony/{hook.provider}/{name}"
    return f"{url}?{urlencode(query)}" if query else url


def _e164_or_none(raw: str | None, region: str) -> str | None:
    """The caller's number, or None when withheld or unreadable ("anonymous", "+266696687")."""
    if raw is None:
        return None
    try:
        return normalize.phone_e164(raw, region)
    except (ValueError, ValidationFailed):
        return None


def _by_sid(session: Session, account_id: uuid.UUID, sid: str) -> Call | None:
    return session.scalars(
        select(Call).where(Call.account_id == account_id, Call.provider_sid == sid)
    ).first()


def incoming(session: Session, keyring: Keyring, settings: Settings, hook: Webhook) -> str:
    """A new call: route it, say the notice, offer the objection key, or dial the operators."""
    call_sid = hook.sid("CallSid")
    dialled = _e164_or_none(hook.require("To"), keyring.region)
    reply = twiml.Response()
    try:
        if dialled is None:
            raise NotFound("the dialled number is not valid")
        account, _did = account_for_did(session, dialled)
    except NotFound:
        reply.say(NOT_ASSIGNED_FR)
        reply.hangup()
        return reply.xml()
    switch_account(session, account.id)
    call = _by_sid(session, account.id, call_sid)
    if call is None:  # a retried webhook finds the call it already opened
        opened = calls.open_call(
            session,
            keyring,
            dialled=dialled,
            caller_number=_e164_or_none(hook.get("From"), keyring.region),
            provider_sid=call_sid,
        )
        call = opened.call
        call.provider = hook.provider
        # A caller who objected to recording (Art. 21, a rights request) is never recorded.
        objected = opened.caller.recording_objected_at is not None
        # Where the call goes (opening hours), decided once and kept on the call.
        decision = routing.decide(opened.mandate, routing.clock())
        call.routing = decision.routing
        call.routing_contact = decision.contact
        audit.record(
            session,
            "call.routed",
            "call",
            call.id,
            details={"routing": decision.routing, "reason": decision.reason},
        )
        # Only a call the operators take is ever recorded (never voicemail, never on call).
        call.recording_state = (
            "offered"
            if decision.in_hours_leg
            and not objected
            and opened.mandate.recording.records(call_sid, utcnow())
            else "off"
        )
        calls.mark_notice_read(session, call)
        mandate = opened.mandate
    else:
        _row, mandate = mandate_by_id(session, call.mandate_id)
    ids = {"a": str(call.account_id), "c": str(call.id)}
    keys = mandate.notice.sms_key or mandate.notice.english_key
    if call.recording_state == "offered" or keys:
        # The notice (and the recording notice with the objection key, before any recording)
        # inside a <Gather>: the caller may press a key the mandate names while it is said.
        _notice_gather(reply, settings, hook, ids, call, mandate, first_layer=True)
    else:
        _greeting(reply, call, mandate)
        reply.say(mandate.notice.layer1_fr)
        _next_leg(reply, session, settings, hook, ids, call, mandate, record=False)
    return reply.xml()


def _greeting(
    reply: twiml.Response, call: Call, mandate: Mandate, parent: ET.Element | None = None
) -> None:
    """Out of hours to voicemail: the mandate's after-hours greeting, in the call's language
    (and in English too when the caller has no key to choose English)."""
    if call.routing != routing.AFTER_HOURS_VOICEMAIL:
        return
    after = mandate.after_hours or AfterHours(action=AfterHoursAction.VOICEMAIL)
    langs = [call.language]
    if call.language == "fr" and mandate.notice.english_key is None and after.greeting_en:
        langs.append("en")
    for lang in langs:
        # A forward that found nobody on call falls back to voicemail: the default greeting.
        text = after.greeting(lang) or DEFAULT_GREETING[lang]
        reply.say(text, language=PROMPTS[lang]["voice"], parent=parent)


def _next_leg(
    reply: twiml.Response,
    session: Session,
    settings: Settings,
    hook: Webhook,
    ids: dict[str, str],
    call: Call,
    mandate: Mandate,
    *,
    record: bool,
) -> None:
    """After the notice, the leg the arrival decision chose (``call.routing``): the
    operators (in hours, or a 24/7 client), voicemail, or the on-call contact."""
    if call.routing == routing.AFTER_HOURS_VOICEMAIL:
        audit.record(session, "call.voicemail_offered", "call", call.id, details={"dial": "closed"})
        reply.record(
            max_length=settings.telephony_voicemail_seconds,
            recording_callback=_url(settings, hook, "recording", **ids, k="voicemail"),
            action=_url(settings, hook, "dial-done", **ids, step="voicemail"),
        )
        return
    if call.routing == routing.AFTER_HOURS_FORWARD:
        contacts = mandate.on_call.contacts if mandate.on_call else ()
        index = call.routing_contact
        if mandate.on_call is not None and index is not None and 0 <= index < len(contacts):
            lang = call.language if call.language in PROMPTS else "fr"
            oc = mandate.on_call
            notice = oc.notice_en if lang == "en" else oc.notice_fr
            reply.say(notice or DEFAULT_FORWARD_NOTICE[lang], language=PROMPTS[lang]["voice"])
            reply.dial(
                contacts[index].phone,
                action=_url(settings, hook, "dial-done", **ids),
                timeout=settings.telephony_ring_seconds,
            )
            return
    _dial(reply, settings, hook, ids, record=record, route=(session, call, mandate))


def _notice_gather(
    reply: twiml.Response,
    settings: Settings,
    hook: Webhook,
    ids: dict[str, str],
    call: Call,
    mandate: Mandate,
    *,
    first_layer: bool,
    **query: str,
) -> None:
    """Say the notice in the call's language inside a <Gather>; no key: on to ``gather``."""
    lang = call.language
    voice = PROMPTS[lang]["voice"]
    action = _url(settings, hook, "gather", **ids, **query)
    g = reply.gather(action=action, num_digits=1)
    notice = mandate.notice
    if first_layer:
        _greeting(reply, call, mandate, parent=g)
        if lang == "fr" and notice.english_key:
            choose = PROMPTS["en"]["choose"].format(key=notice.english_key)
            reply.say(choose, language="en-GB", parent=g)
        layer1 = notice.layer1_en if lang == "en" and notice.layer1_en else notice.layer1_fr
        reply.say(layer1, language=voice, parent=g)
    if call.recording_state == "offered":
        recording = notice.recording_en if lang == "en" else notice.recording_fr
        reply.say(recording or notice.recording_fr or "", language=voice, parent=g)
    reply.redirect(action)


# The in-hours leg when ``PERMANENCE_ROUTING_MODE`` is ``queue``: routing's queue
# (``routing.queue.enqueue``, ADR 0023), registered there with ``@queues_calls`` and imported by
# name here before it is used (as ``permanence.checks`` imports the checks), so that the voice
# webhooks do not import routing, which builds on them (ADR 0037).
QueueLeg = Callable[[Session, Settings, Webhook, twiml.Response, Call, Mandate], None]
QUEUE_MODULE = "permanence.routing.queue"
_QUEUE_LEG: Slot[QueueLeg] = Slot(QUEUE_MODULE, "an in-hours queue is registered already")
queues_calls = _QUEUE_LEG.register
queue_leg = _QUEUE_LEG.get


def _dial(
    reply: twiml.Response,
    settings: Settings,
    hook: Webhook,
    ids: dict[str, str],
    *,
    record: bool,
    route: tuple[Session, Call, Mandate] | None = None,
) -> None:
    if settings.routing_mode == "queue" and route is not None:
        # The in-hours leg through the provider's queue (permanence.routing, ADR 0023).
        queue_leg()(route[0], settings, hook, reply, route[1], route[2])
        return
    reply.dial(
        settings.telephony_operators,
        action=_url(settings, hook, "dial-done", **ids),
        timeout=settings.telephony_ring_seconds,
        record="record-from-answer-dual" if record else None,
        recording_callback=_url(settings, hook, "recording", **ids, k="call") if record else None,
    )


def gather(session: Session, settings: Settings, hook: Webhook) -> str:
    """After the notice: the objection key means no recording; no key means the notice was
    heard whole, so record (if offered). Any other key is ignored: the recording notice is
    said again, whole (``n`` counts the repeats); a caller who keeps pressing other keys
    never heard it, so is not recorded."""
    call = call_from_query(session, hook)
    _row, mandate = mandate_by_id(session, call.mandate_id)
    digits = hook.get("Digits")
    ids = {"a": str(call.account_id), "c": str(call.id)}
    reply = twiml.Response()
    notice = mandate.notice
    repeat = {"n": hook.query["n"]} if "n" in hook.query else {}
    if digits and digits == notice.english_key and call.language != "en":
        # The caller chose English: the first layer (and recording notice) again, in English.
        call.language = "en"
        audit.record(session, "call.language", "call", call.id, details={"language": "en"})
        _notice_gather(reply, settings, hook, ids, call, mandate, first_layer=True, **repeat)
        return reply.xml()
    if digits and digits == notice.sms_key:
        prompts = PROMPTS[call.language]
        if call.notice_sms_at is None:
            try:
                notice_sms.send_notice(session, settings, call, via="keypress")
            except Conflict:
                reply.say(prompts["sms_unavailable"], language=prompts["voice"])
            else:
                reply.say(prompts["sms_sent"], language=prompts["voice"])
        else:
            reply.say(prompts["sms_sent"], language=prompts["voice"])
        if call.recording_state == "offered":
            # The recording notice must still be heard whole before anything is recorded.
            _notice_gather(reply, settings, hook, ids, call, mandate, first_layer=False, **repeat)
            return reply.xml()
        _next_leg(reply, session, settings, hook, ids, call, mandate, record=False)
        return reply.xml()
    if call.recording_state == "offered":
        if digits == mandate.recording.objection_key:
            call.recording_state = "objected"
            audit.record(
                session, "call.recording_objected", "call", call.id, details={"by": "keypress"}
            )
        elif digits:
            repeats = hook.query.get("n", "0")
            done = int(repeats) if repeats.isdigit() and len(repeats) < 3 else NOTICE_REPEATS
            if done < NOTICE_REPEATS:
                _notice_gather(
                    reply, settings, hook, ids, call, mandate, first_layer=False, n=str(done + 1)
                )
                return reply.xml()
            call.recording_state = "off"
            audit.record(session, "call.recording_notice_unheard", "call", call.id)
        else:
            call.recording_state = "recording"
            audit.record(session, "call.recording_started", "call", call.id)
    _next_leg(
        reply,
        session,
        settings,
        hook,
        ids,
        call,
        mandate,
        record=call.recording_state == "recording",
    )
    return reply.xml()


def dial_done(session: Session, settings: Settings, hook: Webhook) -> str:
    """The operators' leg ended (the ``<Dial>`` action), or the voicemail ``<Record>`` did.

    Which one is told by our own URL (``step=voicemail``), never by ``RecordingUrl``: a
    recorded ``<Dial>`` reports its recording on the same action (docs/telephony.md).
    """
    call = call_from_query(session, hook)
    reply = twiml.Response()
    if hook.query.get("step") == "voicemail":
        # The <Record> action: audio was left only if it has a URL and a length.
        if hook.get("RecordingUrl") is not None and (hook.seconds("RecordingDuration") or 0) > 0:
            voicemail_left(session, call)
        reply.hangup()
        return reply.xml()
    dialled = hook.get("DialCallStatus") or "failed"
    if dialled in ("completed", "answered"):
        talk = hook.seconds("DialCallDuration")
        call.talk_s = talk
        if call.answered_at is None:  # the action comes when the operator's leg ends
            call.answered_at = utcnow() - dt.timedelta(seconds=talk or 0)
        outcomes.settle(call)
        audit.record(session, "call.answered", "call", call.id, details={"talk_s": talk})
        reply.hangup()
        return reply.xml()
    call.ended_reason = dialled if dialled in CALL_STATUSES else "failed"
    caller_status = hook.get("CallStatus")
    if caller_status in TERMINAL_STATUSES:
        # The caller hung up while the operators' phones rang: no voicemail to offer.
        _final_status(call, caller_status, None)
        audit.record(
            session, "call.abandoned", "call", call.id, details={"dial": call.ended_reason}
        )
        reply.hangup()
        return reply.xml()
    audit.record(
        session, "call.voicemail_offered", "call", call.id, details={"dial": call.ended_reason}
    )
    ids = {"a": str(call.account_id), "c": str(call.id)}
    prompts = PROMPTS[call.language if call.language in PROMPTS else "fr"]
    reply.say(prompts["unavailable"], language=prompts["voice"])
    reply.record(
        max_length=settings.telephony_voicemail_seconds,
        recording_callback=_url(settings, hook, "recording", **ids, k="voicemail"),
        action=_url(settings, hook, "dial-done", **ids, step="voicemail"),
    )
    return reply.xml()


def voicemail_left(session: Session, call: Call) -> None:
    """The caller left audio: the call's outcome is ``voicemail`` (once)."""
    if call.voicemail:
        return
    call.voicemail = True
    outcomes.settle(call)
    audit.record(session, "call.voicemail", "call", call.id)


def _final_status(call: Call, new: str, duration: int | None) -> None:
    call.status = new
    call.ended_at = call.ended_at or utcnow()
    if duration is not None:
        call.duration_s = duration
    call.ended_reason = call.ended_reason or new
    if call.recording_state == "offered":  # hung up during the notice: nothing recorded
        call.recording_state = "off"
    outcomes.settle(call)


def status(session: Session, keyring: Keyring, hook: Webhook) -> None:
    """Status callback: ringing → in-progress → a terminal status, with durations (the CDR).

    Statuses only move forward: a late 'ringing' after 'completed' changes nothing.
    ``in-progress`` means the provider answered the call to run our TwiML, not that an
    operator did: only the ``<Dial>`` action (or the console) records an answer.
    """
    call_sid = hook.sid("CallSid")
    new = hook.require("CallStatus")
    if new not in CALL_STATUSES:
        raise ValidationFailed("CallStatus is not a known call status")
    dialled = _e164_or_none(hook.get("To"), keyring.region)
    if dialled is None:
        raise ValidationFailed("the webhook has no valid To")
    account, _did = account_for_did(session, dialled)
    switch_account(session, account.id)
    call = _by_sid(session, account.id, call_sid)
    if call is None:
        raise NotFound("no such call")
    apply_status(session, call, new, hook.seconds("CallDuration"))


def apply_status(session: Session, call: Call, new: str, duration: int | None) -> bool:
    """One status of the provider's (callback or REST answer); False if it changed nothing."""
    if call.status in TERMINAL_STATUSES:
        return False
    if new in TERMINAL_STATUSES:
        _final_status(call, new, duration)
    elif call.status == EXPIRED_STATUS:
        return False  # a stale, non-final status does not reopen an expired call
    else:
        call.status = new
    audit.record(
        session, "call.status", "call", call.id, details={"status": new, "outcome": call.outcome}
    )
    return True
