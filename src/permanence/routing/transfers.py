"""Passing a caller connected through the queue to a recipient the mandate declares (its
on-call contacts), never to a number typed by hand: the form names a contact by its place in
the mandate. Cold: the provider's REST API redirects the caller's leg to TwiML that dials the
contact with the client's number as caller id; the operator's leg ends (wrap-up). Warm (below):
the operator speaks to the contact first. Either way the call's outcome is ``transferred``
(counted as such in the statistics and the usage report).
"""

from __future__ import annotations

import contextlib
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from permanence.accounts.model import Account, Did
from permanence.accounts.service import mandate_by_id
from permanence.audit import service as audit
from permanence.calls import outcome as outcomes
from permanence.calls import service as calls
from permanence.calls.model import Call
from permanence.config import Settings
from permanence.context import AccessContext
from permanence.db import ctx_of, switch_account
from permanence.errors import ConfigurationError, Conflict, NotFound, ValidationFailed
from permanence.mandates.schema import Mandate
from permanence.routing import queue
from permanence.routing.model import QueueEntry
from permanence.routing.rooms import conference, room
from permanence.runtime import Runtime
from permanence.staff.training import require_trained
from permanence.telephony import twiml
from permanence.telephony.ports import CallsApi, ProviderFailed
from permanence.telephony.webhook import Webhook

TRANSFER_FR = "Nous vous transférons. Merci de patienter."


@dataclass(frozen=True)
class Target:
    index: int
    name: str
    phone: str


def targets(mandate: Mandate) -> list[Target]:
    """The recipients a caller may be passed to: the mandate's on-call contacts, each person
    once (a rota names the same contact on several lines; the first line's index stands)."""
    contacts = mandate.on_call.contacts if mandate.on_call else ()
    out: dict[tuple[str, str], Target] = {}
    for i, c in enumerate(contacts):
        out.setdefault((c.name, c.phone), Target(i, c.name, c.phone))
    return list(out.values())


def _mine(session: Session, call_id: uuid.UUID) -> QueueEntry | None:
    """The call's queue entry if it is connected to the signed-in operator, else None."""
    entry = session.get(QueueEntry, call_id)
    if entry is None or entry.state != "connected" or entry.operator_id != ctx_of(session).actor_id:
        return None
    return entry


def transferable(session: Session, call_id: uuid.UUID) -> list[Target]:
    """The targets offered on this operator's screen for this call ([] if it is not theirs).
    The queue's entries are outside row-level security: the call is read first, so another
    account's call answers as a missing one (404)."""
    call = calls.get_call(session, call_id)
    if _mine(session, call_id) is None:
        return []
    return targets(mandate_by_id(session, call.mandate_id)[1])


def cold_transfer(
    rt: Runtime,
    ctx: AccessContext,
    call_id: uuid.UUID,
    index: int,
    api: Callable[[], CallsApi],
) -> Target:
    """Redirect the caller to the mandate's contact ``index``; then record the outcome."""
    with rt.db.session(ctx) as s:
        call = calls.get_call(s, call_id)  # another account's call: 404, as in transferable
        require_trained(s, ctx)
        entry = _mine(s, call_id)
        if entry is None:
            raise Conflict(
                "only the operator talking to this caller through the queue can transfer"
            )
        found = targets(mandate_by_id(s, call.mandate_id)[1])
        target = next((t for t in found if t.index == index), None)
        if target is None:
            raise ValidationFailed("choose one of the recipients the mandate declares")
        caller_sid = entry.caller_sid
        ids = {"a": str(call.account_id), "c": str(call.id), "t": str(index)}
    url = queue.url(rt.settings, rt.settings.routing_provider, "transfer", **ids)
    api().redirect_call(caller_sid, url)
    with rt.db.session(ctx) as s:
        call = calls.get_call(s, call_id)
        call.outcome = outcomes.TRANSFERRED
        audit.record(
            s, "call.transferred", "call", call.id, details={"kind": "cold", "target": index}
        )
    return target


def transfer_twiml(session: Session, hook: Webhook) -> str:
    """The caller's leg, redirected: dial the contact with the client's number shown."""
    account_id = hook.query_uuid("a")
    entry = session.get(QueueEntry, hook.query_uuid("c"))
    if entry is None or entry.account_id != account_id or entry.caller_sid != hook.sid("CallSid"):
        raise NotFound("no such call")
    switch_account(session, account_id)
    call = calls.get_call(session, entry.call_id)
    raw = hook.query.get("t", "")
    found = {t.index: t for t in targets(mandate_by_id(session, call.mandate_id)[1])}
    if not raw.isdigit() or int(raw) not in found:
        raise ValidationFailed("the transfer URL names no declared recipient")
    did = session.get(Did, call.did_id) if call.did_id else None
    reply = twiml.Response()
    reply.say(TRANSFER_FR)
    attrs = {"timeout": "30"}
    if did is not None:
        attrs["callerId"] = did.e164
    dial = ET.SubElement(reply.root, "Dial", attrs)
    ET.SubElement(dial, "Number").text = found[int(raw)].phone
    return reply.xml()


# -- warm transfer ------------------------------------------------------------------------------
# The operator speaks to the contact first (ADR 0030). The queue bridged the caller and the
# operator with <Dial><Queue>: the operator's leg is redirected to a consultation room and the
# contact is called into it; the caller's leg, out of the bridge, runs the <Enqueue> action
# (``queue.left``), which puts them in a hold room (a conference that does not start before
# someone joins it: they hear the hold audio). "Relier" moves the contact into the caller's
# room and ends the operator's leg; "Reprendre" brings the operator back to the caller.

CONSULT_FR = "Appel de la permanence téléphonique pour {name} : un appel à vous transférer."
JOINED_FR = "Nous vous mettons en relation."


def warm_transfer(
    rt: Runtime,
    ctx: AccessContext,
    call_id: uuid.UUID,
    index: int,
    api: Callable[[], CallsApi],
) -> Target:
    """Start a warm transfer to the mandate's contact ``index``: the operator's leg goes to
    the consultation room, the contact is called into it; the caller holds."""
    name = rt.settings.routing_provider
    with rt.db.session(ctx) as s:
        call = calls.get_call(s, call_id)  # another account's call: 404
        require_trained(s, ctx)
        entry = _mine(s, call_id)
        if entry is None or entry.offer_sid is None:
            raise Conflict(
                "only the operator talking to this caller through the queue can transfer"
            )
        if entry.consult_target is not None:
            raise Conflict("a warm transfer of this call is already under way")
        found = targets(mandate_by_id(s, call.mandate_id)[1])
        target = next((t for t in found if t.index == index), None)
        if target is None:
            raise ValidationFailed("choose one of the recipients the mandate declares")
        did = s.get(Did, call.did_id) if call.did_id else None
        if did is None:
            raise Conflict("the account has no number to present as caller id")
        entry.consult_target = index  # before the REST calls: the caller's leg reads it
        entry.consult_sid = None
        operator_sid, from_ = entry.offer_sid, did.e164
        ids = {"a": str(call.account_id), "c": str(call.id), "t": str(index)}
    # The contact is called first: if that fails, the caller and the operator have not
    # been touched. Then the operator leaves the bridge for the consultation room.
    import httpx

    sid = ""
    try:
        sid = api().create_call(
            to=target.phone,
            from_=from_,
            url=queue.url(rt.settings, name, "warm-contact", **ids),
            status_callback=queue.url(rt.settings, name, "warm-contact-status", **ids),
            timeout=rt.settings.telephony_ring_seconds,
        )
        api().redirect_call(operator_sid, queue.url(rt.settings, name, "warm-consult", **ids))
    except (ProviderFailed, ConfigurationError, httpx.HTTPError):
        if sid:  # best effort: the contact's phone stops ringing
            with contextlib.suppress(ProviderFailed, ConfigurationError, httpx.HTTPError):
                api().cancel_call(sid)
        with rt.db.session(ctx) as s:
            back = s.get(QueueEntry, call_id)
            if back is not None:
                back.consult_target = None
        raise ProviderFailed("the provider did not start the transfer; try again") from None
    with rt.db.session(ctx) as s:
        entry = s.get(QueueEntry, call_id)
        if entry is not None and sid and entry.consult_sid is None:
            entry.consult_sid = sid  # Telnyx: the contact's first webhook names the leg
        audit.record(
            s, "call.transfer_consult", "call", call_id, details={"kind": "warm", "target": index}
        )
    return target


def _consulting(session: Session, call_id: uuid.UUID) -> QueueEntry:
    entry = _mine(session, call_id)
    if entry is None or entry.consult_target is None or entry.offer_sid is None:
        raise Conflict("no warm transfer of yours is under way for this call")
    return entry


def warm_bridge(
    rt: Runtime, ctx: AccessContext, call_id: uuid.UUID, api: Callable[[], CallsApi]
) -> None:
    """The contact agreed: they join the caller's room, the operator's leg ends (wrap-up);
    the call's outcome is ``transferred``."""
    name = rt.settings.routing_provider
    with rt.db.session(ctx) as s:
        call = calls.get_call(s, call_id)
        entry = _consulting(s, call_id)
        if entry.consult_sid is None:
            raise Conflict("the contact has not answered yet")
        ids = {"a": str(call.account_id), "c": str(call.id)}
        consult_sid, operator_sid, index = entry.consult_sid, entry.offer_sid, entry.consult_target
    api().redirect_call(consult_sid, queue.url(rt.settings, name, "warm-join", **ids))
    if operator_sid is not None:
        done = queue.url(rt.settings, name, "warm-done", **ids, l="operator")
        api().redirect_call(operator_sid, done)
    with rt.db.session(ctx) as s:
        call = calls.get_call(s, call_id)
        call.outcome = outcomes.TRANSFERRED
        audit.record(
            s, "call.transferred", "call", call.id, details={"kind": "warm", "target": index}
        )


def warm_back(
    rt: Runtime, ctx: AccessContext, call_id: uuid.UUID, api: Callable[[], CallsApi]
) -> None:
    """The contact declined or did not answer: the operator goes back to the caller (in the
    caller's room, which then starts); the contact's leg ends."""
    name = rt.settings.routing_provider
    with rt.db.session(ctx) as s:
        call = calls.get_call(s, call_id)
        entry = _consulting(s, call_id)
        ids = {"a": str(call.account_id), "c": str(call.id)}
        consult_sid, operator_sid = entry.consult_sid, entry.offer_sid
        entry.consult_target = None  # the contact's leg keeps its id until it ends
        audit.record(s, "call.transfer_back", "call", call.id)
    if operator_sid is not None:
        api().redirect_call(operator_sid, queue.url(rt.settings, name, "warm-back", **ids))
    if consult_sid is not None:
        done = queue.url(rt.settings, name, "warm-done", **ids, l="contact")
        api().redirect_call(consult_sid, done)


def _warm_leg(session: Session, hook: Webhook, leg: str) -> tuple[QueueEntry, Call]:
    """The entry our URL names, with the webhook's CallSid checked against ``leg``: the
    operator's (``offer_sid``), the caller's, or the contact's (taken from its first webhook
    when the provider's REST reply had no id)."""
    account_id = hook.query_uuid("a")
    entry = session.get(QueueEntry, hook.query_uuid("c"))
    sid = hook.sid("CallSid")
    if entry is None or entry.account_id != account_id:
        raise NotFound("no such call")
    if leg == "contact" and entry.consult_sid is None and entry.consult_target is not None:
        entry.consult_sid = sid
    expected = {
        "operator": entry.offer_sid,
        "caller": entry.caller_sid,
        "contact": entry.consult_sid,
    }[leg]
    if expected != sid:
        raise NotFound("no such call")
    switch_account(session, account_id)
    return entry, calls.get_call(session, entry.call_id)


def warm_twiml(session: Session, settings: Settings, hook: Webhook, step: str) -> str:
    """The TwiML of each leg of a warm transfer: ``consult`` (the operator's leg, into the
    consultation room), ``contact`` (the contact answered: told why, into that room),
    ``join`` (the contact, into the caller's room), ``back`` (the operator, into the
    caller's room), ``done`` (a leg whose part is over)."""
    leg = {"consult": "operator", "back": "operator", "contact": "contact", "join": "contact"}
    reply = twiml.Response()
    if step == "done":
        _warm_leg(session, hook, "contact" if hook.query.get("l") == "contact" else "operator")
        reply.hangup()
        return reply.xml()
    _entry, call = _warm_leg(session, hook, leg[step])
    if step == "consult":
        conference(reply, room(call.id, "consult"), starts=True, ends=True)
    elif step == "contact":
        account = session.get(Account, call.account_id)
        reply.say(CONSULT_FR.format(name=account.name if account else ""))
        conference(reply, room(call.id, "consult"), starts=True, ends=False)
    elif step == "join":
        reply.say(JOINED_FR)
        conference(reply, room(call.id, "hold"), starts=True, ends=True)
    else:  # back: the operator rejoins the caller
        conference(reply, room(call.id, "hold"), starts=True, ends=True)
    return reply.xml()


def warm_contact_status(session: Session, hook: Webhook) -> None:
    """The contact's leg's status callback: its id (Telnyx gives it here first) and, when it
    did not answer, an audit entry (the operator then goes back to the caller)."""
    status = hook.require("CallStatus")
    account_id = hook.query_uuid("a")
    entry = session.get(QueueEntry, hook.query_uuid("c"))
    if entry is None or entry.account_id != account_id:
        raise NotFound("no such call")
    sid = hook.sid("CallSid")
    if entry.consult_sid is None and entry.consult_target is not None:
        entry.consult_sid = sid
    if entry.consult_sid != sid:
        return  # an earlier consultation's late news
    if status in queue.MISSED:
        switch_account(session, account_id)
        audit.record(
            session, "call.transfer_unanswered", "call", entry.call_id, details={"status": status}
        )
