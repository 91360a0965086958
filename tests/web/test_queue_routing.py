"""The queue, end to end (issue 16, "done when"): the test acts as Twilio — webhooks signed
by the ``twilio`` package, in the order the provider sends them — and as its REST API (the
local ``ProviderServer`` records the calls the dispatcher places). In hours → queued →
position announced → offered to the longest-idle available operator → answered (whisper,
``<Dial><Queue>``) → that operator's console state names the call to open; overflow →
voicemail; a paused operator is never offered a call; an operator who lets it ring out is
paused and the next one is tried; a priority account is served first; a dead provider
leaves the call waiting. Each asserts the TwiML returned, the REST calls made and the
outcome recorded."""

from __future__ import annotations

import datetime as dt
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from permanence.accounts.service import import_mandate, mandate_version
from permanence.calls.model import Call
from permanence.calls.presence_model import OperatorPresence
from permanence.context import AccessContext, Role
from permanence.db import switch_account
from permanence.mandates.parsing import dump_mandate
from permanence.mandates.queueing import Queueing
from permanence.routing.model import QueueEntry
from tests.provider_server import ProviderServer
from tests.web.conftest import Person, World
from tests.web.test_call_outcomes import CALLER, PLUMBER_DID, PUBLIC, Phone, sid_for

MEDICAL_DID = "+33478000001"

DEVICES = {"operator": "client:op-claire", "supervisor": "sip:sup@pbx.permanence.example"}


@pytest.fixture
def queue_world(world: World, provider: ProviderServer) -> World:
    world.rt.settings.routing_mode = "queue"
    world.rt.settings.routing_wrap_up_seconds = 30
    admin = world.login(world.admin)
    for who in ("operator", "supervisor"):
        person: Person = getattr(world, who)
        r = admin.put(f"/api/v1/routing/devices/{person.id}", json={"device": DEVICES[who]})
        assert r.status_code == 200, r.text
        assert r.json()["device"] == DEVICES[who]
    return world


def console(world: World, who: Person) -> TestClient:
    """A signed-in staff member's browser session (cookie and CSRF header)."""
    return world.login(who)


def set_presence(c: TestClient, state: str) -> None:
    r = c.post(
        "/console/routage/presence",
        data={"etat": state},
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == state


def first(reply: ET.Element, tag: str) -> ET.Element:
    el = reply.find(tag)
    assert el is not None, ET.tostring(reply)
    return el


def queued(phone: Phone) -> ET.Element:
    reply = phone.incoming()
    assert reply.find("Dial") is None
    enqueue = first(reply, "Enqueue")
    assert enqueue.text == "permanence-plomberie-durand"
    return enqueue


def wait(phone: Phone, enqueue: ET.Element, position: int = 1, avg: int = 0) -> ET.Element:
    return phone.twiml(
        enqueue.get("waitUrl", ""),
        QueuePosition=str(position),
        QueueTime="5",
        AvgQueueTime=str(avg),
        CurrentQueueSize=str(position),
    )


def entry_of(world: World, sid: str) -> QueueEntry:
    with world.rt.db.session(AccessContext.system("test")) as s:
        entry = s.scalars(select(QueueEntry).where(QueueEntry.caller_sid == sid)).one()
        s.expunge(entry)
        return entry


def call_of(world: World, call_id: uuid.UUID) -> Call:
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        call = s.get(Call, call_id)
        assert call is not None
        s.expunge(call)
        return call


def state_of(world: World, who: Person) -> str | None:
    with world.rt.db.session(AccessContext.system("test")) as s:
        row = s.get(OperatorPresence, who.id)
        return row.state if row else None


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_a_queued_call_goes_to_the_longest_idle_operator_who_gets_the_screen_pop(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    sup = console(world, world.supervisor)
    op = console(world, world.operator)
    set_presence(sup, "free")  # the supervisor has been free longer: the longest idle
    set_presence(op, "free")

    phone = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    enqueue = queued(phone)
    assert enqueue.get("waitUrl", "").startswith(f"{PUBLIC}/routing/twilio/wait?")
    assert enqueue.get("action", "").startswith(f"{PUBLIC}/routing/twilio/left?")

    # -- the waiting music: position, hold audio; the dispatcher offers the call meanwhile
    reply = wait(phone, enqueue)
    says = [el.text for el in reply.findall("Say")]
    assert says == ["Vous êtes la première personne en attente."]
    assert first(reply, "Play").text == f"{PUBLIC}/static/routing/hold.wav"
    assert len(provider.created_calls) == 1
    offer = provider.created_calls[0]
    assert offer["To"] == DEVICES["supervisor"]
    assert offer["From"] == PLUMBER_DID
    assert offer["Timeout"] == "25"
    assert offer["Url"].startswith(f"{PUBLIC}/routing/twilio/operator?")
    assert query(offer["Url"])["o"] == str(world.supervisor.id)
    assert offer["StatusCallbackEvent"] == "initiated ringing answered completed"
    entry = entry_of(world, phone.sid)
    assert (entry.state, entry.operator_id) == ("offered", world.supervisor.id)

    # A second wait fetch (position 1 again, an average now known) offers nothing more.
    reply = wait(phone, enqueue, avg=150)
    assert [el.text for el in reply.findall("Say")][
        1
    ] == "Temps d'attente estimé : environ 2 minutes."
    assert len(provider.created_calls) == 1

    # -- the operator's leg rings, then is answered: whisper, then the queue
    leg = Phone(world.client(), "twilio", provider.created_sid(0))
    status_url = offer["StatusCallback"]
    assert leg.post(status_url, {"CallSid": leg.sid, "CallStatus": "ringing"}).status_code == 204
    assert entry_of(world, phone.sid).offer_status == "ringing"
    calls = sup.get("/api/v1/board").json()["calls"]
    assert [(c["state"], c["label_en"], c["label_fr"]) for c in calls] == [
        ("offered", "ringing at sup", "sonne chez sup")
    ]
    reply = leg.twiml(offer["Url"], CallStatus="in-progress")
    assert first(reply, "Say").text == "Appel pour Plomberie Durand."
    queue_el = first(first(reply, "Dial"), "Queue")
    assert queue_el.text == "permanence-plomberie-durand"
    assert first(reply, "Dial").get("record") is None  # not a recorded call

    # -- the provider takes the caller off the queue for that operator
    reply = phone.twiml(queue_el.get("url", ""), DequeuingCallSid=leg.sid, QueueTime="14")
    assert first(reply, "Say").text == "Nous vous mettons en relation."
    entry = entry_of(world, phone.sid)
    assert (entry.state, entry.operator_id, entry.offer_sid) == (
        "connected",
        world.supervisor.id,
        leg.sid,
    )
    call = call_of(world, entry.call_id)
    assert call.operator_id == world.supervisor.id and call.answered_at is not None
    assert state_of(world, world.supervisor) == "on_call"

    # -- that operator's console is told which call to open; the other's is not
    mine = sup.get("/console/routage/etat").json()
    assert mine["pop"] == f"/console/appels/{world.plumber.id}/{entry.call_id}"
    assert mine["state"] == "on_call"
    assert op.get("/console/routage/etat").json()["pop"] is None
    assert sup.get(mine["pop"]).status_code == 200  # the screen pop opens
    board = sup.get("/api/v1/board").json()
    assert [c["label_en"] for c in board["calls"]] == ["talking to sup"]
    page = sup.get("/supervision")
    assert "en conversation avec sup" in page.text

    # -- the conversation ends: wrap-up for the operator, the call answered
    reply = phone.twiml(enqueue.get("action", ""), QueueResult="bridged", QueueTime="14")
    assert [el.tag for el in reply] == ["Hangup"]
    assert leg.post(status_url, {"CallSid": leg.sid, "CallStatus": "completed"}).status_code == 204
    phone.status("completed", 75)
    assert state_of(world, world.supervisor) == "wrap_up"
    board = sup.get("/api/v1/board").json()
    assert board["calls"] == []
    assert {o["display_name"]: o["state"] for o in board["operators"]}["sup"] == "wrap_up"
    call = call_of(world, entry.call_id)
    assert call.outcome == "answered"
    assert entry_of(world, phone.sid).state == "done"
    wrap = sup.get("/console/routage/etat").json()
    assert wrap["state"] == "wrap_up" and 0 < wrap["wrap_up_left_s"] <= 30
    # The automatic wrap-up ends by itself: the operator is available again.
    world.rt.settings.routing_wrap_up_seconds = 0
    assert sup.get("/console/routage/etat").json()["state"] == "free"


def test_overflow_goes_to_voicemail_and_nobody_is_offered_while_all_are_paused(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    op = console(world, world.operator)
    set_presence(op, "break")  # paused: never offered
    phone = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    enqueue = queued(phone)
    reply = wait(phone, enqueue, position=1)
    assert reply.find("Leave") is None and provider.created_calls == []

    # The mandate's longest wait passes.
    call_id = entry_of(world, phone.sid).call_id
    with world.rt.db.session(AccessContext.system("test")) as s:
        entry = s.get(QueueEntry, call_id)
        assert entry is not None
        entry.deadline_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    reply = wait(phone, enqueue, position=1)
    assert [el.tag for el in reply] == ["Leave"]
    reply = phone.twiml(enqueue.get("action", ""), QueueResult="leave", QueueTime="181")
    assert [el.tag for el in reply] == ["Say", "Record"]
    record = first(reply, "Record")
    assert record.get("action", "").startswith(f"{PUBLIC}/telephony/twilio/dial-done?")
    phone.twiml(
        record.get("action", ""),
        RecordingUrl=provider.recording_url("RE" + "1" * 32),
        RecordingDuration="9",
        CallStatus="in-progress",
    )
    phone.status("completed", 200)
    entry = entry_of(world, phone.sid)
    assert (entry.state, entry.result) == ("done", "overflow")
    assert call_of(world, entry.call_id).outcome == "voicemail"
    assert provider.created_calls == []  # the paused operator was never rung


def test_an_operator_who_lets_it_ring_is_paused_and_the_next_one_is_offered(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    sup = console(world, world.supervisor)
    op = console(world, world.operator)
    set_presence(op, "break")
    set_presence(sup, "free")
    phone = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    wait(phone, queued(phone))
    assert [c["To"] for c in provider.created_calls] == [DEVICES["supervisor"]]
    leg = Phone(world.client(), "twilio", provider.created_sid(0))
    status_url = provider.created_calls[0]["StatusCallback"]
    r = leg.post(status_url, {"CallSid": leg.sid, "CallStatus": "no-answer"})
    assert r.status_code == 204
    assert state_of(world, world.supervisor) == "break"  # not offered again to an empty chair
    assert entry_of(world, phone.sid).state == "queued"
    assert len(provider.created_calls) == 1  # the paused operator is not offered

    set_presence(op, "free")  # becoming available offers the waiting call at once
    assert [c["To"] for c in provider.created_calls] == [
        DEVICES["supervisor"],
        DEVICES["operator"],
    ]
    assert entry_of(world, phone.sid).operator_id == world.operator.id
    # A late answer of the first offer finds nothing to take.
    reply = leg.twiml(provider.created_calls[0]["Url"], CallStatus="in-progress")
    assert [el.tag for el in reply] == ["Say", "Hangup"]


def test_a_priority_account_is_served_first_and_a_dead_provider_leaves_calls_waiting(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    # The medical practice's mandate marks its account as priority (a new version).
    with world.rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        switch_account(s, world.medical.id)
        _row, mandate = mandate_version(s, world.medical.id)
        urgent = mandate.model_copy(update={"queue": Queueing(priority=True), "version": None})
        import_mandate(s, dump_mandate(urgent), account_id=world.medical.id)
    op = console(world, world.operator)
    plumber_caller = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    wait(plumber_caller, queued(plumber_caller))
    patient = Phone(world.client(), "twilio", "CA" + "7" * 32)
    reply = patient.twiml(
        f"{PUBLIC}/telephony/twilio/incoming", From=CALLER, To=MEDICAL_DID, CallStatus="ringing"
    )
    enqueue = first(reply, "Enqueue")
    assert enqueue.text == "permanence-cabinet-lefevre"
    wait(patient, enqueue)
    patient_entry = entry_of(world, patient.sid)
    assert patient_entry.priority == 1 and entry_of(world, plumber_caller.sid).priority == 0

    provider.create_fail_next = [503]
    set_presence(op, "free")
    assert provider.created_calls == []  # the provider refused: nothing offered, nobody paused
    assert entry_of(world, patient.sid).state == "queued"
    assert state_of(world, world.operator) == "free"

    wait(plumber_caller, queued(plumber_caller))  # the next wait fetch tries again
    assert len(provider.created_calls) == 1
    offer = provider.created_calls[0]
    # The later call of the priority account first, from that account's number.
    assert query(offer["Url"])["c"] == str(patient_entry.call_id)
    assert offer["From"] == MEDICAL_DID
    assert entry_of(world, plumber_caller.sid).state == "queued"


def test_devices_are_validated_from_the_api(queue_world: World) -> None:
    admin = queue_world.login(queue_world.admin)
    url = f"/api/v1/routing/devices/{queue_world.operator.id}"
    for bad in ("06 12 34 56 78", "client:", "sip:nobody", "tel:+33612345678", "client:a b"):
        r = admin.put(url, json={"device": bad})
        assert r.status_code == 422, (bad, r.text)
        assert "client:IDENTITY" in r.text
    r = admin.put(url, json={"device": "+33 6 12 34 56 78"})
    assert r.json()["device"] == "+33612345678"
    r = admin.put(
        f"/api/v1/routing/devices/{queue_world.client_plumber.id}", json={"device": "client:x"}
    )
    assert r.status_code == 404  # only operators and supervisors have lines
    op = queue_world.login(queue_world.operator)
    assert op.put(url, json={"device": "client:mine"}).status_code == 403
    listed = {d["user_id"]: d["device"] for d in admin.get("/api/v1/routing/devices").json()}
    assert listed[str(queue_world.operator.id)] == "+33612345678"


def test_the_demo_operators_have_lines(world: World) -> None:
    from permanence import schema
    from permanence.config import Settings
    from permanence.demo.loader import DEMO_DEVICES, load_demo
    from permanence.routing.devices import lines
    from permanence.runtime import Runtime
    from tests.conftest import PG_URL, TEST_MASTER_KEY

    if PG_URL:
        pytest.skip("the demo loads into an empty database; covered on SQLite")
    fresh = world.rt.settings.data_dir / "demo-lines.db"
    schema.upgrade(f"sqlite:///{fresh}")
    demo_rt = Runtime.from_settings(
        Settings(
            data_dir=world.rt.settings.data_dir,
            database_url=f"sqlite:///{fresh}",
            master_key=TEST_MASTER_KEY,
        )
    )
    try:
        load_demo(demo_rt, calls_per_account=1)
        with demo_rt.db.session(AccessContext.system("test"), readonly=True) as s:
            found = {u.email: d for u, d in lines(s)}
        assert found == DEMO_DEVICES
    finally:
        demo_rt.close()


def test_the_admin_sets_a_line_from_the_page_and_a_bad_one_is_refused(world: World) -> None:
    admin = world.login(world.admin)
    page = admin.get("/admin/lignes")
    assert page.status_code == 200 and "Lignes des opérateurs" in page.text
    url = f"/admin/lignes/{world.operator.id}"
    r = admin.post(url, data={"appareil": "0612345678"}, follow_redirects=False)
    assert r.status_code == 422
    assert "Cette ligne n'est pas valide" in r.text and 'aria-invalid="true"' in r.text
    r = admin.post(url, data={"appareil": "client:claire"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/lignes?enregistre=1"
    assert 'value="client:claire"' in admin.get("/admin/lignes").text
    op = world.login(world.operator)
    assert op.post(url, data={"appareil": "client:me"}).status_code == 403


def test_two_offers_answered_in_the_other_order_follow_the_callers(
    queue_world: World, provider: ProviderServer
) -> None:
    """The provider's <Queue> takes the head of the queue, whichever offer was answered
    first: each call then names the operator who really has it, and each console pops it."""
    world = queue_world
    sup = console(world, world.supervisor)
    op = console(world, world.operator)
    set_presence(sup, "free")
    set_presence(op, "free")
    one = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    two = Phone(world.client(), "twilio", sid_for(world, recorded=False, prefix="CB"))
    wait(one, queued(one))
    wait(two, queued(two), position=2)
    assert [c["To"] for c in provider.created_calls] == [DEVICES["supervisor"], DEVICES["operator"]]
    sup_leg = Phone(world.client(), "twilio", provider.created_sid(0))
    op_leg = Phone(world.client(), "twilio", provider.created_sid(1))

    # The operator answers first: the provider hands them the head of the queue, caller one.
    reply = op_leg.twiml(provider.created_calls[1]["Url"], CallStatus="in-progress")
    op_queue = first(first(reply, "Dial"), "Queue").get("url", "")
    one.twiml(op_queue, DequeuingCallSid=op_leg.sid, QueueTime="20")
    e1, e2 = entry_of(world, one.sid), entry_of(world, two.sid)
    assert (e1.state, e1.operator_id) == ("connected", world.operator.id)
    assert (e2.state, e2.operator_id, e2.offer_sid) == (
        "offered",
        world.supervisor.id,
        sup_leg.sid,
    )

    # The supervisor's leg (whose URL named caller one) now takes caller two.
    reply = sup_leg.twiml(provider.created_calls[0]["Url"], CallStatus="in-progress")
    assert first(reply, "Say").text == "Appel pour Plomberie Durand."
    sup_queue = first(first(reply, "Dial"), "Queue").get("url", "")
    two.twiml(sup_queue, DequeuingCallSid=sup_leg.sid, QueueTime="25")
    assert entry_of(world, two.sid).operator_id == world.supervisor.id
    assert op.get("/console/routage/etat").json()["pop"].endswith(str(e1.call_id))
    assert sup.get("/console/routage/etat").json()["pop"].endswith(str(e2.call_id))


def test_a_caller_who_hung_up_is_never_offered(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    op = console(world, world.operator)
    phone = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    wait(phone, queued(phone))
    phone.status("completed", 30)  # the queue's action (QueueResult=hangup) was lost
    set_presence(op, "free")
    assert provider.created_calls == []
    entry = entry_of(world, phone.sid)
    assert (entry.state, entry.result) == ("done", "hangup")
    assert call_of(world, entry.call_id).outcome == "abandoned"


def test_a_caller_who_hangs_up_while_an_operator_is_rung_stops_that_ring(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    op = console(world, world.operator)
    set_presence(op, "free")
    phone = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    enqueue = queued(phone)
    wait(phone, enqueue)
    leg_sid = provider.created_sid(0)
    reply = phone.twiml(enqueue.get("action", ""), QueueResult="hangup", QueueTime="8")
    assert [el.tag for el in reply] == ["Hangup"]
    assert provider.call_updates == [(leg_sid, {"Status": "canceled"})]
    leg = Phone(world.client(), "twilio", leg_sid)
    status_url = provider.created_calls[0]["StatusCallback"]
    assert leg.post(status_url, {"CallSid": leg_sid, "CallStatus": "canceled"}).status_code == 204
    assert state_of(world, world.operator) == "free"  # not paused for a ring we stopped
    phone.status("completed", 12)
    entry = entry_of(world, phone.sid)
    assert (entry.state, entry.result) == ("done", "hangup")
    assert call_of(world, entry.call_id).outcome == "abandoned"


def test_bad_queue_webhooks_are_refused_with_a_clear_4xx(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    phone = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    enqueue = queued(phone)
    wait_url = enqueue.get("waitUrl", "")
    path = wait_url.removeprefix(PUBLIC)
    unsigned = world.client().post(path, data={"CallSid": phone.sid})
    assert unsigned.status_code == 403
    r = phone.post(wait_url, {"CallSid": phone.sid, "QueuePosition": "first"})
    assert r.status_code == 422 and "QueuePosition" in r.text
    r = phone.post(wait_url, {"CallSid": "CA" + "9" * 32, "QueuePosition": "1"})
    assert r.status_code == 404  # another call's id in our URL
    other = f"{PUBLIC}/routing/twilio/offer-status?c={uuid.uuid4()}&o=nope"
    r = phone.post(other, {"CallSid": phone.sid, "CallStatus": "ringing"})
    assert r.status_code in (404, 422)
    r = phone.post(
        f"{PUBLIC}/routing/twilio/connect?o={uuid.uuid4()}", {"CallSid": "CA" + "8" * 32}
    )
    assert r.status_code == 404
    assert entry_of(world, phone.sid).state == "queued"  # nothing half-written


def connected_call(world: World, provider: ProviderServer, who: Person) -> tuple[Phone, Phone]:
    """A caller queued, offered to ``who`` (the only one available), answered, connected."""
    phone = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    wait(phone, queued(phone))
    n = len(provider.created_calls) - 1
    leg = Phone(world.client(), "twilio", provider.created_sid(n))
    reply = leg.twiml(provider.created_calls[n]["Url"], CallStatus="in-progress")
    queue_url = first(first(reply, "Dial"), "Queue").get("url", "")
    phone.twiml(queue_url, DequeuingCallSid=leg.sid, QueueTime="7")
    return phone, leg


def test_a_cold_transfer_goes_only_to_a_recipient_the_mandate_declares(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    op = console(world, world.operator)
    sup = console(world, world.supervisor)
    set_presence(op, "free")
    phone, leg = connected_call(world, provider, world.operator)
    call_id = entry_of(world, phone.sid).call_id
    base = f"/console/routage/transfert/{world.plumber.id}/{call_id}"

    # The screen pop's control lists the mandate's on-call contacts, nothing to type.
    form = op.get(base)
    assert "Marc Durand" in form.text and "Julien Durand" in form.text
    assert 'type="tel"' not in form.text and "+33600000003" not in form.text
    assert "Marc Durand" not in sup.get(base).text  # not the supervisor's call

    r = op.post(base, data={"destinataire": "7"}, follow_redirects=False)
    assert r.status_code == 422 and provider.call_updates == []  # not a declared recipient
    r = sup.post(base, data={"destinataire": "0"}, follow_redirects=False)
    assert r.status_code == 409 and provider.call_updates == []  # not the one on the call

    r = op.post(base, data={"destinataire": "0"}, follow_redirects=False)
    assert r.status_code == 303
    [(sid, update)] = provider.call_updates
    assert sid == phone.sid and update["Method"] == "POST"
    assert update["Url"].startswith(f"{PUBLIC}/routing/twilio/transfer?")
    reply = phone.twiml(update["Url"])
    dial = first(reply, "Dial")
    assert dial.get("callerId") == PLUMBER_DID
    assert first(dial, "Number").text == "+33600000003"

    # The operator's leg ends: wrap-up; the call's outcome is its own.
    url = provider.created_calls[0]["StatusCallback"]
    assert leg.post(url, {"CallSid": leg.sid, "CallStatus": "completed"}).status_code == 204
    phone.status("completed", 95)
    assert state_of(world, world.operator) == "wrap_up"
    assert call_of(world, call_id).outcome == "transferred"


def test_a_caller_who_chose_english_hears_the_queue_in_english(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    phone = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    enqueue = queued(phone)
    call_id = entry_of(world, phone.sid).call_id
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        call = s.get(Call, call_id)
        assert call is not None
        call.language = "en"  # as the mandate's English key sets it
    reply = wait(phone, enqueue, position=3, avg=240)
    says = reply.findall("Say")
    assert [el.text for el in says] == [
        "You are number 3 in the queue.",
        "The expected wait is about 4 minutes.",
    ]
    assert {el.get("language") for el in says} == {"en-GB"}


def test_a_queued_call_cannot_be_taken_by_hand_from_the_console(
    queue_world: World, provider: ProviderServer
) -> None:
    world = queue_world
    op = console(world, world.operator)
    phone = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    wait(phone, queued(phone))
    call_id = entry_of(world, phone.sid).call_id
    r = op.post(f"/console/appels/{world.plumber.id}/{call_id}/prendre", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console?probleme=taken"
    assert call_of(world, call_id).answered_at is None
    assert entry_of(world, phone.sid).state == "queued"


@pytest.mark.gdpr("CSP L.1110-4")
def test_a_health_data_account_on_need_to_know_is_offered_only_to_its_assigned_operators(
    queue_world: World, provider: ProviderServer
) -> None:
    """The medical practice has an assigned operator (not this one): its patient's call is
    never offered to an unassigned operator, who would then be refused the caller anyway; a
    supervisor (not bound by assignments) is offered it."""
    from permanence.needtoknow import service as needtoknow
    from tests.web.conftest import make_person

    world = queue_world
    colleague = make_person(world.rt, Role.OPERATOR, "assignee@permanence.example")
    with world.rt.db.session(AccessContext.system("test:dpo", world.medical.id)) as s:
        needtoknow.assign(s, colleague.id)
    patient = Phone(world.client(), "twilio", "CA" + "8" * 32)
    reply = patient.twiml(
        f"{PUBLIC}/telephony/twilio/incoming", From=CALLER, To=MEDICAL_DID, CallStatus="ringing"
    )
    enqueue = first(reply, "Enqueue")
    op = console(world, world.operator)
    set_presence(op, "free")
    wait(patient, enqueue)
    assert provider.created_calls == []  # the unassigned operator is never rung
    assert entry_of(world, patient.sid).state == "queued"

    sup = console(world, world.supervisor)
    set_presence(sup, "free")
    wait(patient, enqueue)
    assert [c["To"] for c in provider.created_calls] == [DEVICES["supervisor"]]
    assert entry_of(world, patient.sid).operator_id == world.supervisor.id
