"""Warm transfer (issue 16, "done when": transfer warm): the test acts as Twilio (webhooks
signed by the ``twilio`` package) and as its REST API (the local ``ProviderServer``). The
operator connected through the queue speaks to the mandate's contact first: their leg is
redirected into a consultation room and the contact is called into it, the caller holds in a
room of their own (the queue's action); « Relier » moves the contact to the caller and ends
the operator's leg (outcome ``transferred``, audited ``warm``); « Reprendre » brings the
operator back to the caller instead."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sqlalchemy import select

from permanence.audit.model import AuditEntry
from permanence.context import AccessContext
from tests.provider_server import ProviderServer
from tests.web import test_queue_routing
from tests.web.conftest import World
from tests.web.test_call_outcomes import PLUMBER_DID, PUBLIC, Phone
from tests.web.test_queue_routing import (
    call_of,
    connected_call,
    console,
    entry_of,
    first,
    set_presence,
    state_of,
)

queue_world = test_queue_routing.queue_world  # the fixture: the queue mode, operators' lines

MARC = "+33600000003"  # the plumber's first on-call contact (demo mandate)


def conference_of(reply: ET.Element) -> ET.Element:
    return first(first(reply, "Dial"), "Conference")


def actions(world: World, name: str) -> list[str]:
    with world.rt.db.session(AccessContext.system("test")) as s:
        return [e.body for e in s.scalars(select(AuditEntry).where(AuditEntry.action == name))]


def test_a_warm_transfer_consults_the_contact_while_the_caller_holds_then_bridges(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    op = console(world, world.operator)
    set_presence(op, "free")
    phone, leg = connected_call(world, provider, world.operator)
    call_id = entry_of(world, phone.sid).call_id
    base = f"/console/routage/transfert-accompagne/{world.plumber.id}/{call_id}"
    form = op.get(f"/console/routage/transfert/{world.plumber.id}/{call_id}").text
    assert f'formaction="{base}"' in form and "Lui parler d'abord" in form

    # Not a declared recipient: 422, nothing asked of the provider.
    assert op.post(base, data={"destinataire": "7"}).status_code == 422
    assert provider.call_updates == [] and len(provider.created_calls) == 1

    r = op.post(base, data={"destinataire": "0"}, follow_redirects=False)
    assert r.status_code == 303
    # REST: the operator's leg into the consultation room; the contact called into it.
    [(sid, update)] = provider.call_updates
    assert sid == leg.sid and update["Url"].startswith(f"{PUBLIC}/routing/twilio/warm-consult?")
    contact_call = provider.created_calls[1]
    assert (contact_call["To"], contact_call["From"]) == (MARC, PLUMBER_DID)
    assert contact_call["Url"].startswith(f"{PUBLIC}/routing/twilio/warm-contact?")
    room = f"permanence-consult-{call_id}"
    reply = leg.twiml(update["Url"])
    assert conference_of(reply).text == room
    assert conference_of(reply).get("startConferenceOnEnter") == "true"
    # The caller, out of the bridge, runs the queue's action: the hold room, hold audio.
    reply = phone.twiml(
        f"{PUBLIC}/routing/twilio/left?a={world.plumber.id}&c={call_id}",
        QueueResult="bridged",
        QueueTime="30",
    )
    hold = conference_of(reply)
    assert hold.text == f"permanence-hold-{call_id}"
    assert hold.get("startConferenceOnEnter") == "false"
    assert hold.get("waitUrl") == f"{PUBLIC}/static/routing/hold.wav"
    assert first(reply, "Say").text == "Merci de patienter, nous joignons votre correspondant."
    assert entry_of(world, phone.sid).state == "connected"  # not over for the operator
    # The contact answers: told why, into the consultation room.
    contact = Phone(world.client(), "twilio", provider.created_sid(1))
    reply = contact.twiml(contact_call["Url"], CallStatus="in-progress")
    assert "un appel à vous transférer" in (first(reply, "Say").text or "")
    assert conference_of(reply).text == room
    # The screen pop's control now offers « Mettre en relation ».
    form = op.get(f"/console/routage/transfert/{world.plumber.id}/{call_id}").text
    assert f'action="{base}/relier"' in form

    r = op.post(f"{base}/relier", follow_redirects=False)
    assert r.status_code == 303
    (csid, join), (osid, done) = provider.call_updates[1:]
    assert csid == contact.sid and join["Url"].startswith(f"{PUBLIC}/routing/twilio/warm-join?")
    assert osid == leg.sid and done["Url"].startswith(f"{PUBLIC}/routing/twilio/warm-done?")
    reply = contact.twiml(join["Url"])
    assert conference_of(reply).text == f"permanence-hold-{call_id}"
    assert conference_of(reply).get("startConferenceOnEnter") == "true"
    assert [el.tag for el in leg.twiml(done["Url"])] == ["Hangup"]
    status_url = provider.created_calls[0]["StatusCallback"]
    assert leg.post(status_url, {"CallSid": leg.sid, "CallStatus": "completed"}).status_code == 204
    phone.status("completed", 240)
    assert call_of(world, call_id).outcome == "transferred"
    assert state_of(world, world.operator) == "wrap_up"
    [body] = actions(world, "call.transferred")
    assert '"warm"' in body and MARC not in body


def test_back_to_the_caller_when_the_contact_declines_and_forged_legs_are_refused(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    op = console(world, world.operator)
    set_presence(op, "free")
    phone, leg = connected_call(world, provider, world.operator)
    call_id = entry_of(world, phone.sid).call_id
    base = f"/console/routage/transfert-accompagne/{world.plumber.id}/{call_id}"
    assert op.post(f"{base}/relier").status_code == 409  # nothing under way
    # The provider fails to call the contact: a 502, and neither leg was touched.
    provider.create_fail_next = [503]
    assert op.post(base, data={"destinataire": "1"}).status_code == 502
    assert provider.call_updates == [] and entry_of(world, phone.sid).consult_target is None
    assert op.post(base, data={"destinataire": "1"}, follow_redirects=False).status_code == 303
    assert op.post(base, data={"destinataire": "1"}).status_code == 409  # one at a time
    contact_call = provider.created_calls[1]
    assert contact_call["To"] == "+33600000004"
    # A webhook with another leg's sid is refused.
    stranger = Phone(world.client(), "twilio", "CA" + "9" * 32)
    assert (
        stranger.post(provider.call_updates[0][1]["Url"], {"CallSid": stranger.sid}).status_code
        == 404
    )

    contact = Phone(world.client(), "twilio", provider.created_sid(1))
    contact.twiml(contact_call["Url"], CallStatus="in-progress")
    r = op.post(f"{base}/reprendre", follow_redirects=False)
    assert r.status_code == 303
    (osid, back), (csid, done) = provider.call_updates[1:]
    assert osid == leg.sid and back["Url"].startswith(f"{PUBLIC}/routing/twilio/warm-back?")
    reply = leg.twiml(back["Url"])
    assert conference_of(reply).text == f"permanence-hold-{call_id}"
    assert csid == contact.sid
    assert [el.tag for el in contact.twiml(done["Url"])] == ["Hangup"]
    assert actions(world, "call.transfer_back")
    assert call_of(world, call_id).outcome != "transferred"
