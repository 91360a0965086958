"""The operator's workflow through the API: screen pop, purpose-bound intake, consent,
the training gate; the client reads and acknowledges."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select

from permanence.context import AccessContext, Role
from permanence.db import utcnow
from permanence.messages.model import Appointment, Message
from permanence.staff.model import TrainingRecord
from tests.factories import make_caller
from tests.web.conftest import World, make_person
from tests.web.isolation import assert_hidden

PLUMBER_DID = "+33240000001"
MEDICAL_DID = "+33478000001"


def _open(c, did: str, number: str = "01 99 00 12 34") -> dict:  # type: ignore[no-untyped-def]
    r = c.post("/api/v1/calls", json={"dialled": did, "caller_number": number})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _count(world: World, model: type, account_id) -> int:  # type: ignore[no-untyped-def]
    with world.rt.db.session(AccessContext.system("test", account_id), readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_screen_pop_shows_account_notice_and_known_caller(world: World) -> None:
    make_caller(world.rt, world.medical.id, first="Camille", last="Martin", phone="01 99 00 12 34")
    op = world.login(world.operator)
    call = _open(op, MEDICAL_DID)
    assert call["known_caller"] is True
    pop = op.get(f"/api/v1/accounts/{world.medical.id}/calls/{call['id']}").json()
    assert pop["account"]["slug"] == "cabinet-lefevre"
    assert "Lefèvre" in pop["notice"]["layer1_fr"]
    assert pop["caller"]["last_name"] == "Martin"
    assert {p["code"] for p in pop["purposes"]} == {"appointment", "message"}
    r = op.post(f"/api/v1/accounts/{world.medical.id}/calls/{call['id']}/notice-read")
    assert r.json()["notice_read_at"] is not None
    assert r.json()["notice_version"] == pop["notice"]["version"]


def test_message_flow_from_operator_to_client(world: World) -> None:
    op = world.login(world.operator)
    call = _open(op, PLUMBER_DID)
    base = f"/api/v1/accounts/{world.plumber.id}"
    body = {
        "purpose": "intervention",
        "values": {
            "last_name": "Martin",
            "phone": "01 99 00 12 34",
            "address": "3 rue des Lilas, 44000 Nantes",
            "urgency": "à planifier",
            "description": "Fuite sous l'évier",
        },
    }
    r = op.post(f"{base}/calls/{call['id']}/messages", json=body)
    assert r.status_code == 201, r.text
    msg_id = r.json()["id"]
    client = world.login(world.client_plumber)
    listed = client.get(f"{base}/messages").json()
    assert [m["id"] for m in listed] == [msg_id]
    assert listed[0]["fields"] is None  # the list carries no content
    opened = client.get(f"{base}/messages/{msg_id}").json()
    assert opened["fields"]["description"] == "Fuite sous l'évier"
    acked = client.post(f"{base}/messages/{msg_id}/acknowledge").json()
    assert acked["status"] == "acknowledged"
    from permanence.delivery import ledger as delivery

    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        portal = [e for e in delivery.ledger(s, uuid.UUID(msg_id)) if e.channel == "portal"]
    assert len(portal) == 1
    assert portal[0].viewed_at is not None and portal[0].acknowledged_at is not None
    other = world.login(world.client_medical)
    assert_hidden(other, "GET", f"{base}/messages/{msg_id}")
    assert_hidden(other, "GET", f"/api/v1/accounts/{world.medical.id}/messages/{msg_id}")


def test_each_bad_submission_is_refused_naming_it_and_nothing_is_stored(world: World) -> None:
    op = world.login(world.operator)
    call = _open(op, PLUMBER_DID)
    url = f"/api/v1/accounts/{world.plumber.id}/calls/{call['id']}/messages"
    good = {
        "last_name": "Martin",
        "phone": "0199001234",
        "address": "3 rue des Lilas, 44000 Nantes",
        "urgency": "à planifier",
        "description": "Fuite",
    }
    cases = [
        ({**good, "diagnosis": "x"}, "'diagnosis'"),
        ({k: v for k, v in good.items() if k != "address"}, "'address'"),
        (
            {**good, "description": "Fuite ; la cliente est diabétique"},
            "a health detail was found in the field 'Description of the problem'",
        ),
        ({**good, "phone": "pas un numéro"}, "'phone'"),
    ]
    for values, named in cases:
        r = op.post(url, json={"purpose": "intervention", "values": values})
        assert r.status_code == 422, r.text
        text = r.text
        assert named in text
        assert "'intervention'" in text
        assert "diabétique" not in text and "pas un numéro" not in text
    assert _count(world, Message, world.plumber.id) == 0


@pytest.mark.gdpr("Art. 7(1)")
def test_consent_purpose_needs_recorded_consent_and_withdrawal_stops_it(world: World) -> None:
    op = world.login(world.operator)
    call = _open(op, PLUMBER_DID)
    base = f"/api/v1/accounts/{world.plumber.id}"
    take = {"purpose": "satisfaction", "values": {"last_name": "Martin", "phone": "0199001234"}}
    r = op.post(f"{base}/calls/{call['id']}/messages", json=take)
    assert r.status_code == 422 and "consent" in r.json()["message"]
    wrong = {"purpose": "satisfaction", "wording_version": "ancienne", "channel": "voice"}
    assert op.post(f"{base}/calls/{call['id']}/consents", json=wrong).status_code == 422
    given = op.post(
        f"{base}/calls/{call['id']}/consents",
        json={"purpose": "satisfaction", "wording_version": "2025-1", "channel": "voice"},
    )
    assert given.status_code == 201, given.text
    proof = given.json()
    assert proof["wording_version"] == "2025-1" and proof["channel"] == "voice"
    assert op.post(f"{base}/calls/{call['id']}/messages", json=take).status_code == 201
    client = world.login(world.client_plumber)
    w = client.post(f"{base}/consents/{proof['id']}/withdraw", json={"channel": "web"})
    assert w.status_code == 200 and w.json()["withdrawn_at"]
    assert op.post(f"{base}/calls/{call['id']}/messages", json=take).status_code == 422
    history = client.get(f"{base}/callers/{proof['caller_id']}/consents").json()
    assert [c["withdrawn_at"] is not None for c in history] == [True]


def test_operator_with_expired_training_is_refused_until_renewed(world: World) -> None:
    late = make_person(world.rt, Role.OPERATOR, "late@permanence.example")
    with world.rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        for rec in s.scalars(select(TrainingRecord).where(TrainingRecord.user_id == late.id)):
            rec.expires_at = utcnow() - dt.timedelta(days=1)
    c = world.login(late)
    r = c.post("/api/v1/calls", json={"dialled": PLUMBER_DID, "caller_number": "0199001234"})
    assert r.status_code == 403
    assert "training" in r.json()["message"]
    from permanence.staff.training import record_training

    with world.rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        record_training(s, late.id)
    r = c.post("/api/v1/calls", json={"dialled": PLUMBER_DID, "caller_number": "0199001234"})
    assert r.status_code == 201


def test_appointments_book_conflict_move_cancel_and_feed(world: World) -> None:
    op = world.login(world.operator)
    call = _open(op, PLUMBER_DID)
    base = f"/api/v1/accounts/{world.plumber.id}"
    day = dt.date.today() + dt.timedelta(days=7)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    slots = op.get(f"{base}/availability", params={"day": day.isoformat()}).json()
    assert len(slots) == 14  # 09-12 and 14-18 in 30-minute slots
    first = slots[0]
    values = {
        "last_name": "Martin",
        "phone": "0199001234",
        "address": "3 rue des Lilas, 44000 Nantes",
        "preferred_slot": first["starts_at"],
    }
    body = {"purpose": "appointment", "values": values, **first}
    r = op.post(f"{base}/calls/{call['id']}/appointments", json=body)
    assert r.status_code == 201, r.text
    appt = r.json()
    clash = op.post(f"{base}/calls/{call['id']}/appointments", json=body)
    assert clash.status_code == 409
    assert len(op.get(f"{base}/availability", params={"day": day.isoformat()}).json()) == 13
    client = world.login(world.client_plumber)
    moved = client.post(f"{base}/appointments/{appt['id']}/move", json=slots[1])
    assert moved.status_code == 200 and moved.json()["starts_at"] == slots[1]["starts_at"]
    keys = client.post(
        f"{base}/api-keys", json={"name": "Agenda", "scopes": ["calendar:read"]}
    ).json()
    feed_client = world.client()
    feed_client.headers["Authorization"] = f"Bearer {keys['secret']}"
    feed = feed_client.get(f"{base}/calendar.ics")
    assert feed.status_code == 200
    assert "BEGIN:VEVENT" in feed.text and "Martin" in feed.text
    assert "Lilas" not in feed.text  # who and when, never the address or the reason
    assert client.post(f"{base}/appointments/{appt['id']}/cancel").json()["status"] == "cancelled"
    assert "BEGIN:VEVENT" not in feed_client.get(f"{base}/calendar.ics").text
    assert _count(world, Appointment, world.plumber.id) == 1
