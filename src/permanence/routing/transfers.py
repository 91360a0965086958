"""Cold transfer of a caller connected through the queue to a recipient the mandate declares
(its on-call contacts), never to a number typed by hand: the form names a contact by its
place in the mandate. The provider's REST API redirects the caller's leg to TwiML that dials
the contact with the client's number as caller id; the operator's leg ends (wrap-up). The
call's outcome is ``transferred`` (counted as such in the statistics and the usage report).
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from permanence.accounts.model import Did
from permanence.accounts.service import mandate_by_id
from permanence.audit import service as audit
from permanence.calls import outcome as outcomes
from permanence.calls import service as calls
from permanence.context import AccessContext
from permanence.db import ctx_of, switch_account
from permanence.errors import Conflict, NotFound, ValidationFailed
from permanence.mandates.schema import Mandate
from permanence.routing import queue
from permanence.routing.model import QueueEntry
from permanence.runtime import Runtime
from permanence.staff.training import require_trained
from permanence.telephony import twiml
from permanence.telephony.ports import CallsApi
from permanence.telephony.service import Webhook

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
