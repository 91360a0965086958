"""Call-backs (issue 16, "done when"): the test acts as Twilio — webhooks signed by the
``twilio`` package — and as its REST API (the local ``ProviderServer`` records the calls
placed). A call-back from a voicemail rings the operator's own device, then the person with
the client's number as caller id; the outbound call is the account's, with its own outcome,
audited and counted in the statistics and the usage report. In the queue, the mandate's
call-back key takes the caller out of the queue (no voicemail) and the console lists the
call-back to make, which one action places."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

from sqlalchemy import select

from permanence.accounts.service import import_mandate, mandate_version
from permanence.audit.model import AuditEntry
from permanence.calls.model import Call
from permanence.context import AccessContext, Role
from permanence.db import switch_account
from permanence.mandates.queueing import Queueing
from permanence.mandates.schema import dump_mandate
from tests.provider_server import ProviderServer
from tests.web import test_queue_routing
from tests.web.conftest import World
from tests.web.test_call_outcomes import CALLER, PLUMBER_DID, PUBLIC, Phone, sid_for
from tests.web.test_queue_routing import (
    DEVICES,
    console,
    entry_of,
    first,
    query,
    queued,
    set_presence,
    state_of,
    wait,
)
from tests.web.test_voicemails import leave_voicemail

queue_world = test_queue_routing.queue_world  # the fixture: the queue mode, operators' lines


def outbound_calls(world: World) -> list[Call]:
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        rows = list(
            s.scalars(select(Call).where(Call.direction == "outbound").order_by(Call.started_at))
        )
        for row in rows:
            s.expunge(row)
        return rows


def audit_details(world: World, action: str) -> list[str]:
    with world.rt.db.session(AccessContext.system("test")) as s:
        return [e.body for e in s.scalars(select(AuditEntry).where(AuditEntry.action == action))]


def operator_answers(world: World, provider: ProviderServer, n: int) -> tuple[Phone, ET.Element]:
    """The operator's device answers the ``n``-th call placed: the TwiML it runs."""
    placed = provider.created_calls[n]
    leg = Phone(world.client(), "twilio", provider.created_sid(n))
    return leg, leg.twiml(placed["Url"], CallStatus="in-progress", Direction="outbound-api")


def test_a_call_back_from_a_voicemail_rings_the_operator_then_the_caller_as_the_client(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    world.rt.settings.routing_mode = "dial"  # the voicemail is left as nobody answered
    leave_voicemail(world, provider, fail=[])
    world.rt.settings.routing_mode = "queue"
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        source_id = s.scalars(select(Call.id).where(Call.direction == "inbound")).one()
    op = console(world, world.operator)
    set_presence(op, "free")

    page = op.get(f"/console/messagerie-vocale/{world.plumber.id}").text
    action = f"/console/rappels/{world.plumber.id}/{source_id}"
    assert f'action="{action}"' in page

    r = op.post(action, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console?rappel=1"
    assert "votre ligne sonne" in op.get(r.headers["location"]).text.lower()
    # -- REST: the operator's own device first, the client's number shown
    [placed] = provider.created_calls
    assert placed["To"] == DEVICES["operator"]
    assert placed["From"] == PLUMBER_DID
    assert placed["Url"].startswith(f"{PUBLIC}/routing/twilio/callback?")
    assert placed["StatusCallback"].startswith(f"{PUBLIC}/routing/twilio/callback-status?")
    assert query(placed["Url"])["s"] == str(source_id)
    assert CALLER not in placed["Url"] + placed["StatusCallback"]  # ids only in our URLs
    [call] = outbound_calls(world)
    assert (call.direction, call.routing, call.operator_id) == (
        "outbound",
        "outbound",
        world.operator.id,
    )
    assert state_of(world, world.operator) == "on_call"  # not offered a queued call meanwhile

    # -- the operator answers: the client's name, then the person, as the client
    leg, reply = operator_answers(world, provider, 0)
    assert first(reply, "Say").text == "Rappel pour Plomberie Durand. Nous appelons la personne."
    dial = first(reply, "Dial")
    assert dial.get("callerId") == PLUMBER_DID
    assert first(dial, "Number").text == CALLER
    assert dial.get("action", "").startswith(f"{PUBLIC}/routing/twilio/callback-done?")

    # -- the person answered and they talked 42 s; then the operator's leg ends
    reply = leg.twiml(dial.get("action", ""), DialCallStatus="completed", DialCallDuration="42")
    assert [el.tag for el in reply] == ["Hangup"]
    r = leg.post(
        placed["StatusCallback"],
        {"CallSid": leg.sid, "CallStatus": "completed", "CallDuration": "50"},
    )
    assert r.status_code == 204
    [call] = outbound_calls(world)
    assert (call.outcome, call.talk_s, call.duration_s, call.status) == (
        "answered",
        42,
        50,
        "completed",
    )
    assert state_of(world, world.operator) == "wrap_up"
    [body] = audit_details(world, "call.callback")
    assert str(source_id) in body and CALLER not in body and "06 39" not in body

    # -- counted: statistics and the usage report
    sup = console(world, world.supervisor)
    stats = sup.get(f"/api/v1/accounts/{world.plumber.id}/stats").json()
    assert stats["outbound"] == 1
    month = call.started_at.strftime("%Y-%m")
    usage = sup.get(f"/api/v1/accounts/{world.plumber.id}/usage/{month}").json()
    assert usage["calls_outbound"] == 1


def test_an_unanswered_call_back_fails_and_bad_requests_are_refused_clearly(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    phone = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    queued(phone)
    source_id = entry_of(world, phone.sid).call_id
    phone.status("completed", 20)  # the caller hung up in the queue
    sup = console(world, world.supervisor)
    set_presence(sup, "free")
    action = f"/console/rappels/{world.plumber.id}/{source_id}"

    # Another account's id: as for a missing call; the provider is never asked.
    r = sup.post(f"/console/rappels/{world.medical.id}/{source_id}", follow_redirects=False)
    assert r.status_code == 404 and provider.created_calls == []
    # The provider fails: a clear 502, the attempt recorded as failed, the operator free again.
    provider.create_fail_next = [503]
    r = sup.post(action, follow_redirects=False)
    assert r.status_code == 502 and provider.created_calls == []
    [failed] = outbound_calls(world)
    assert (failed.outcome, failed.ended_reason) == ("failed", "provider")
    assert state_of(world, world.supervisor) == "free"

    # Placed; the operator answers, the person does not: "failed", never "abandoned".
    assert sup.post(action, follow_redirects=False).status_code == 303
    leg, reply = operator_answers(world, provider, 0)
    dial = first(reply, "Dial")
    reply = leg.twiml(dial.get("action", ""), DialCallStatus="no-answer")
    assert [el.text for el in reply.findall("Say")] == [
        "La personne ne répond pas. L'appel est terminé."
    ]
    leg.post(
        provider.created_calls[0]["StatusCallback"],
        {"CallSid": leg.sid, "CallStatus": "completed", "CallDuration": "31"},
    )
    second = outbound_calls(world)[1]
    assert (second.outcome, second.ended_reason) == ("failed", "no-answer")
    assert second.answered_at is None
    assert state_of(world, world.supervisor) == "free"  # nothing talked, no wrap-up

    # A webhook for a call-back that does not exist, or with another leg's sid: 404.
    bad = leg.post(
        provider.created_calls[0]["Url"].replace(str(second.id), str(uuid.uuid4())),
        {"CallSid": leg.sid},
    )
    assert bad.status_code == 404
    other = Phone(world.client(), "twilio", "CA" + "5" * 32)
    assert other.post(provider.created_calls[0]["Url"], {"CallSid": other.sid}).status_code == 404

    # Without a line of one's own there is nothing to ring: 409, nothing placed.
    admin = world.login(world.admin)
    admin.put(f"/api/v1/routing/devices/{world.supervisor.id}", json={"device": None})
    r = sup.post(action, follow_redirects=False)
    assert r.status_code == 409 and len(provider.created_calls) == 1


def _offer_callback_key(world: World, key: str) -> None:
    with world.rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        switch_account(s, world.plumber.id)
        _row, mandate = mandate_version(s, world.plumber.id)
        changed = mandate.model_copy(update={"queue": Queueing(callback_key=key), "version": None})
        import_mandate(s, dump_mandate(changed), account_id=world.plumber.id)


def test_a_caller_who_presses_the_call_back_key_leaves_the_queue_and_is_called_back(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    _offer_callback_key(world, "1")
    op = console(world, world.operator)
    set_presence(op, "break")  # nobody available: the caller waits
    phone = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    enqueue = queued(phone)

    # The waiting music is inside a <Gather>: position, the offer, the hold audio.
    reply = wait(phone, enqueue)
    gather = first(reply, "Gather")
    assert gather.get("action", "").startswith(f"{PUBLIC}/routing/twilio/callback-key?")
    assert gather.get("numDigits") == "1"
    assert [el.text for el in gather.findall("Say")] == [
        "Vous êtes la première personne en attente.",
        "Pour être rappelé plutôt que de patienter, tapez 1.",
    ]
    assert first(gather, "Play").text == f"{PUBLIC}/static/routing/hold.wav"

    # Another key: back to waiting, nothing changes.
    reply = phone.twiml(gather.get("action", ""), Digits="5")
    assert first(reply, "Redirect").text == enqueue.get("waitUrl")
    assert entry_of(world, phone.sid).state == "queued"

    # The key: told in French, out of the queue; the queue's action gives no voicemail.
    reply = phone.twiml(gather.get("action", ""), Digits="1")
    assert [el.tag for el in reply] == ["Say", "Leave"]
    assert first(reply, "Say").text == (
        "C'est noté : nous vous rappelons dès qu'un conseiller est libre. Au revoir."
    )
    reply = phone.twiml(enqueue.get("action", ""), QueueResult="leave", QueueTime="40")
    assert [el.tag for el in reply] == ["Hangup"]
    phone.status("completed", 45)
    entry = entry_of(world, phone.sid)
    assert (entry.state, entry.result) == ("done", "callback")
    assert audit_details(world, "call.callback_requested")

    # Available again: the caller left the queue, so nobody is offered that call.
    set_presence(op, "free")
    assert provider.created_calls == []

    # The console lists the call-back to make (the account, never the number).
    page = op.get("/console").text
    action = f"/console/rappels/{world.plumber.id}/{entry.call_id}"
    assert f'action="{action}"' in page and "Plomberie Durand" in page
    assert CALLER not in page and "06 39 98" not in page
    assert op.post(action, follow_redirects=False).status_code == 303
    [placed] = provider.created_calls
    assert placed["To"] == DEVICES["operator"] and placed["From"] == PLUMBER_DID
    leg, reply = operator_answers(world, provider, 0)
    assert first(first(reply, "Dial"), "Number").text == CALLER
    reply = leg.twiml(
        first(reply, "Dial").get("action", ""), DialCallStatus="completed", DialCallDuration="30"
    )
    assert entry_of(world, phone.sid).result == "called_back"
    assert f'action="{action}"' not in op.get("/console").text  # made: off the list


def test_without_a_call_back_key_the_waiting_music_offers_none(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    phone = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    reply = wait(phone, queued(phone))
    assert reply.find("Gather") is None
    assert "rappel" not in ET.tostring(reply, encoding="unicode").lower()


def test_the_operators_recent_calls_offer_a_call_back(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    op = console(world, world.operator)
    set_presence(op, "free")
    phone, _leg = test_queue_routing.connected_call(world, provider, world.operator)
    call_id = entry_of(world, phone.sid).call_id
    phone.twiml(
        f"{PUBLIC}/routing/twilio/left?a={world.plumber.id}&c={call_id}",
        QueueResult="bridged",
        QueueTime="9",
    )
    phone.status("completed", 60)
    page = op.get("/console").text
    assert f'action="/console/rappels/{world.plumber.id}/{call_id}"' in page
    assert CALLER not in page


def test_a_call_back_through_telnyx_uses_its_texml_rest_api_and_its_signature(
    world: World,
) -> None:
    """PERMANENCE_ROUTING_PROVIDER=telnyx: the call-back is placed through Telnyx's TeXML REST
    API (a local server records it: bearer token, JSON, the TeXML application), Telnyx's
    answer carries no call id, and the operator's leg's webhooks are signed by Telnyx (Ed25519)
    under /routing/telnyx/, where the first one names the leg."""
    import base64
    import json

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from tests.servers import HttpSink

    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    telnyx = HttpSink().start()
    settings = world.rt.settings
    settings.public_base_url = PUBLIC
    settings.telnyx_public_key = base64.b64encode(raw).decode()
    settings.routing_provider = "telnyx"
    settings.telnyx_api_base_url = telnyx.url("")
    settings.telnyx_api_key = "KEYtelnyx0123"
    settings.telnyx_account_sid = "acct-1"
    settings.telnyx_texml_application_sid = "app-1"
    try:
        admin = world.login(world.admin)
        r = admin.put(
            f"/api/v1/routing/devices/{world.operator.id}", json={"device": "sip:op@pbx.example"}
        )
        assert r.status_code == 200
        caller = Phone(world.client(), "telnyx", "v3:" + "c" * 40, key)
        caller.incoming()  # a call with the caller's number, which the operator calls back
        caller.status("completed", 30)
        with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
            source_id = s.scalars(select(Call.id).where(Call.provider_sid == caller.sid)).one()

        op = console(world, world.operator)
        r = op.post(f"/console/rappels/{world.plumber.id}/{source_id}", follow_redirects=False)
        assert r.status_code == 303, r.text
        [placed] = telnyx.received
        assert placed.path == "/v2/texml/Accounts/acct-1/Calls"
        assert placed.headers["Authorization"] == "Bearer KEYtelnyx0123"
        body = json.loads(placed.body)
        assert (body["ApplicationSid"], body["To"], body["From"]) == (
            "app-1",
            "sip:op@pbx.example",
            PLUMBER_DID,
        )
        assert body["Url"].startswith(f"{PUBLIC}/routing/telnyx/callback?")
        assert body["StatusCallback"].startswith(f"{PUBLIC}/routing/telnyx/callback-status?")
        [call] = outbound_calls(world)
        assert call.provider == "telnyx" and call.provider_sid is None

        # The leg's first webhook names it; Telnyx's signature, not Twilio's, is checked.
        leg = Phone(world.client(), "telnyx", "v3:" + "d" * 40, key)
        forged = Phone(world.client(), "twilio", leg.sid)
        assert forged.post(body["Url"], {"CallSid": leg.sid}).status_code == 403
        reply = leg.twiml(body["Url"], CallStatus="in-progress")
        dial = first(reply, "Dial")
        assert dial.get("callerId") == PLUMBER_DID and first(dial, "Number").text == CALLER
        leg.twiml(dial.get("action", ""), DialCallStatus="completed", DialCallDuration="12")
        r = leg.post(
            body["StatusCallback"],
            {"CallSid": leg.sid, "CallStatus": "completed", "CallDuration": "20"},
        )
        assert r.status_code == 204
        [call] = outbound_calls(world)
        assert (call.provider_sid, call.outcome, call.talk_s) == (leg.sid, "answered", 12)
    finally:
        telnyx.stop()


def test_the_telnyx_client_cancels_and_redirects_with_a_form_and_needs_its_settings(
    world: World,
) -> None:
    import pytest

    from permanence.errors import ConfigurationError
    from permanence.telephony.ports import TelnyxTexmlApi
    from tests.servers import HttpSink

    with pytest.raises(ConfigurationError):
        TelnyxTexmlApi.from_settings(world.rt.settings)  # no key, account or application
    sink = HttpSink().start()
    try:
        api = TelnyxTexmlApi(sink.url(""), "acct-1", "KEY1", "app-1", timeout=5)
        api.cancel_call("v3:abc")
        api.redirect_call("v3:abc", f"{PUBLIC}/routing/telnyx/transfer?t=0")
        sink.statuses = [500]
        from permanence.telephony.ports import ProviderFailed

        with pytest.raises(ProviderFailed):
            api.redirect_call("v3:abc", f"{PUBLIC}/x")
    finally:
        sink.stop()
    cancel, redirect, _failed = sink.received
    assert cancel.path == redirect.path == "/v2/texml/Accounts/acct-1/Calls/v3:abc"
    assert cancel.body == b"Status=canceled"
    assert redirect.headers["Authorization"] == "Bearer KEY1"
    assert redirect.headers["Content-Type"] == "application/x-www-form-urlencoded"
