"""The client's message list read at a glance (who, phone, first words, urgency, state,
time) with one audited read per page; filters; bulk acknowledgement; cancelling an
appointment asks first."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from sqlalchemy import select

from permanence.audit.model import AuditEntry
from permanence.context import AccessContext
from permanence.delivery.model import Delivery
from permanence.messages import service as messages
from permanence.messages.model import Message
from tests.factories import ctx_for, make_caller
from tests.web.conftest import World
from tests.web.pages_helpers import page_login

DESCRIPTION = "Le chauffe-eau fuit depuis ce matin et inonde la cave, merci de rappeler vite svp"


def _take(world: World, last: str, phone: str, *, urgent: bool = False) -> uuid.UUID:
    caller = make_caller(world.rt, world.plumber.id, last=last, phone=phone)
    with world.rt.db.session(ctx_for(world.plumber.id)) as s:
        msg = messages.take_message(
            s,
            world.rt.keyring,
            caller_id=caller,
            purpose="intervention",
            values={
                "last_name": last,
                "phone": phone,
                "address": "5 rue des Lilas, 44000 Nantes",
                "urgency": "à planifier",
                "description": DESCRIPTION,
            },
            urgent=urgent,
        )
        return msg.id


def _actions(world: World) -> list[str]:
    with world.rt.db.session(AccessContext.system("test"), readonly=True) as s:
        return list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


def _status(world: World, message_id: uuid.UUID) -> str:
    with world.rt.db.session(AccessContext.system("test", world.plumber.id), readonly=True) as s:
        msg = s.get(Message, message_id)
        assert msg is not None
        return msg.status


def test_the_list_shows_who_called_and_what_with_one_audited_read(world: World) -> None:
    urgent = _take(world, "Lemoine", "06 12 34 56 78", urgent=True)
    calm = _take(world, "Garnier", "02 40 00 00 01")
    client, _csrf = page_login(world, world.client_plumber)
    before = _actions(world)

    page = client.get("/portail/messages").text

    for seen in ("Lemoine", "06 12 34 56 78", "Garnier", "02 40 00 00 01", "urgent"):
        assert seen in page, seen
    assert "Le chauffe-eau fuit depuis ce matin et inonde la cave, merci de …" in page
    assert "rappeler vite" not in page  # the first words only
    assert "à traiter" in page
    new = _actions(world)[len(before) :]
    assert new == ["messages.listed"]  # one read for the page, not one per message
    with world.rt.db.session(AccessContext.system("test", world.plumber.id), readonly=True) as s:
        portal = s.scalars(select(Delivery).where(Delivery.channel == "portal")).all()
        assert portal and all(d.viewed_at is None for d in portal)  # the list is no viewing

    only_urgent = client.get("/portail/messages?urgent=1").text
    assert str(urgent) in only_urgent and str(calm) not in only_urgent
    today = dt.date.today()
    later = (today + dt.timedelta(days=2)).isoformat()
    assert "Garnier" not in client.get(f"/portail/messages?du={later}").text
    assert "Garnier" in client.get(f"/portail/messages?du={today - dt.timedelta(days=1)}").text
    assert client.get("/portail/messages?du=hier").status_code == 404  # as any bad page URL


def test_the_client_acknowledges_several_messages_at_once(world: World) -> None:
    first = _take(world, "Lemoine", "06 12 34 56 78")
    second = _take(world, "Garnier", "02 40 00 00 01")
    kept = _take(world, "Morel", "02 40 00 00 02")
    client, csrf = page_login(world, world.client_plumber)
    page = client.get("/portail/messages?etat=new").text
    assert page.count('name="ids"') == 3

    r = client.post(
        "/portail/messages/acquitter",
        data={"ids": [str(first), str(second)], "retour": "etat=new", "csrf_token": csrf},
    )

    assert r.status_code == 303
    assert r.headers["location"] == "/portail/messages?etat=new&acquittes=2"
    after = client.get(r.headers["location"]).text
    assert "2 messages acquittés." in after
    assert "Morel" in after and "Lemoine" not in after
    assert [_status(world, m) for m in (first, second, kept)] == [
        "acknowledged",
        "acknowledged",
        "new",
    ]
    # Another account's message: 404, and nothing of the batch is written.
    other, other_csrf = page_login(world, world.client_medical)
    refused = other.post(
        "/portail/messages/acquitter", data={"ids": [str(kept)], "csrf_token": other_csrf}
    )
    assert refused.status_code == 404
    mixed = client.post(
        "/portail/messages/acquitter",
        data={"ids": [str(kept), str(uuid.uuid4())], "csrf_token": csrf},
    )
    assert mixed.status_code == 404 and _status(world, kept) == "new"
    assert client.post("/portail/messages/acquitter", data={"ids": [str(kept)]}).status_code == 403
    empty = client.post("/portail/messages/acquitter", data={"csrf_token": csrf})
    assert empty.status_code == 422 and _status(world, kept) == "new"


def test_cancelling_an_appointment_asks_first(world: World) -> None:
    caller = make_caller(world.rt, world.plumber.id, last="Lemoine", phone="06 12 34 56 78")
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=8)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    with world.rt.db.session(ctx_for(world.plumber.id)) as s:
        appt = messages.book_appointment(
            s,
            world.rt.keyring,
            caller_id=caller,
            purpose="appointment",
            starts_at=start,
            ends_at=start + dt.timedelta(minutes=30),
            values={
                "last_name": "Lemoine",
                "phone": "06 12 34 56 78",
                "address": "5 rue des Lilas",
                "preferred_slot": start.isoformat(),
            },
        )
    client, _csrf = page_login(world, world.client_plumber)
    week = client.get(f"/portail/agenda?semaine={start.date().isoformat()}").text
    link = re.search(r'href="(/portail/rendez-vous/[^"]+/annuler\?semaine=[^"]+)"', week)
    assert link, "the agenda's Cancel is a link to the question, not a direct POST"

    ask = client.get(link.group(1).replace("&amp;", "&"))

    assert ask.status_code == 200
    assert "Annuler le rendez-vous du" in ask.text and "Non, le garder" in ask.text
    with world.rt.db.session(ctx_for(world.plumber.id), readonly=True) as s:
        assert s.get(type(appt), appt.id).status == "booked"  # type: ignore[union-attr]
    other, _ = page_login(world, world.client_medical)
    assert other.get(f"/portail/rendez-vous/{appt.id}/annuler").status_code == 404
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', ask.text)
    assert csrf
    r = client.post(
        f"/portail/rendez-vous/{appt.id}/annuler",
        data={"csrf_token": csrf.group(1), "semaine": start.date().isoformat()},
    )
    assert r.status_code == 303
    assert "Lemoine" not in client.get(r.headers["location"]).text
    assert "n'est plus réservé" in client.get(f"/portail/rendez-vous/{appt.id}/annuler").text
