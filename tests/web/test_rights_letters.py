"""Letters to the requester (Art. 12(3)): the acknowledgement at intake and the extension
letter reach the person through a real SMTP server, name the controller and the request's
reference, are recorded with how they went, and the DPO reads them on the request's page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from permanence.accounts.service import mandate_version
from permanence.context import AccessContext
from permanence.rights import clock
from permanence.rights.model import RightsLetter
from permanence.rights.service import Outbox
from tests.conftest import SmtpSink, free_port
from tests.factories import caller_with_records
from tests.web.conftest import World

FIRST, LAST = "Honorine", "Basquiat"
PHONE, EMAIL = "06 72 34 56 90", "honorine.basquiat@exemple.fr"


def _controller(world: World) -> str:
    with world.rt.db.session(AccessContext.system("t", world.plumber.id)) as s:
        return mandate_version(s, world.plumber.id)[1].controller.name


def _day(value: str) -> str:
    return clock.local_day(dt.datetime.fromisoformat(value)).strftime("%d/%m/%Y")


def _letters(world: World) -> list[RightsLetter]:
    with world.rt.db.session(AccessContext.system("t", world.plumber.id)) as s:
        rows = s.scalars(select(RightsLetter).order_by(RightsLetter.sent_at)).all()
        s.expunge_all()
        return list(rows)


@pytest.mark.gdpr("Art. 12(3)")
def test_art12_3_acknowledgement_and_extension_letters_reach_the_person_and_the_dpo_sees_them(
    world: World, smtp: SmtpSink
) -> None:
    caller_with_records(
        world.rt, world.plumber.id, first=FIRST, last=LAST, phone=PHONE, email=EMAIL
    )
    world.app.state.rights_outbox = Outbox.from_settings(world.rt.settings)  # type: ignore[attr-defined]
    client = world.login(world.client_plumber)
    base = f"/api/v1/accounts/{world.plumber.id}/rights/requests"
    r = client.post(base, json={"kind": "access", "requester": {"email": EMAIL}})
    assert r.status_code == 201, r.text
    req = r.json()
    reference = "DR-" + req["id"].replace("-", "")[:8].upper()
    controller = _controller(world)

    # The acknowledgement: to the address the requester wrote from, at once.
    assert [to for _f, to, _raw in smtp.messages] == [[EMAIL]]
    ack = smtp.bodies()[0]
    first_due = _day(req["due_at"])
    received = _day(req["received_at"])
    assert controller in ack and reference in ack
    assert f"reçu le {received}" in ack and f"au plus tard le {first_due}" in ack
    assert "confirmer votre identité" in ack  # what happens next
    assert "[English]" in ack and f"by {first_due}" in ack
    assert FIRST not in ack and LAST not in ack

    # The extension: before the first due date, with its reason and the new date.
    ext = client.post(f"{base}/{req['id']}/extend", json={"reason": "number_of_requests"})
    assert ext.status_code == 200, ext.text
    new_due = _day(ext.json()["request"]["due_at"])
    assert new_due != first_due
    letters = _letters(world)
    # Not yet verified: it discloses nothing, so it goes where the request came from.
    assert [(x.kind, x.channel, x.status) for x in letters] == [
        ("received", "email", "sent"),
        ("extension", "email", "sent"),
    ]
    assert [to for _f, to, _raw in smtp.messages] == [[EMAIL], [EMAIL]]
    body = smtp.bodies()[-1]
    assert "nombre de demandes reçues" in body and reference in body and controller in body
    assert f"au plus tard le {new_due} (au lieu du {first_due})" in body

    # The DPO sees each letter, its text and how it went, on the request's page.
    page = world.login(world.dpo).get(f"/dpo/droits/{world.plumber.id}/{req['id']}")
    assert page.status_code == 200
    html = page.text
    assert "lettres-titre" in html
    assert f"au plus tard le {first_due}" in html
    assert "nombre de demandes reçues" in html and f"au plus tard le {new_due}" in html
    assert html.count('class="letter-sent"') == 2


@pytest.mark.gdpr("Art. 12(3)")
def test_art12_3_extension_letter_goes_to_the_verified_person_with_reason_and_dates(
    world: World, smtp: SmtpSink
) -> None:
    caller_with_records(
        world.rt, world.plumber.id, first=FIRST, last=LAST, phone=PHONE, email=EMAIL
    )
    world.app.state.rights_outbox = Outbox.from_settings(world.rt.settings)  # type: ignore[attr-defined]
    client = world.login(world.client_plumber)
    base = f"/api/v1/accounts/{world.plumber.id}/rights/requests"
    req = client.post(
        base,
        json={"kind": "erasure", "requester": {"phone": PHONE}, "verified_by_controller": True},
    ).json()
    # No e-mail given and no SMS gateway: the acknowledgement is for the client to post.
    assert not smtp.messages
    ext = client.post(f"{base}/{req['id']}/extend", json={"reason": "complexity"})
    assert ext.status_code == 200, ext.text
    assert ext.json()["channel"] == "email"
    [(_f, to, _raw)] = smtp.messages
    assert to == [EMAIL]  # the address on file, the requester being verified
    body = smtp.bodies()[-1]
    new_due = _day(ext.json()["request"]["due_at"])
    assert "complexité de votre demande" in body and "12(3)" in body
    assert f"au plus tard le {new_due} (au lieu du {_day(req['due_at'])})" in body
    assert _controller(world) in body and re.search(r"DR-[0-9A-F]{8}", body)
    assert "[English]" in body and "complexity of your request" in body
    kinds = [(x.kind, x.channel, x.status) for x in _letters(world)]
    assert kinds == [("received", "letter", "to_post"), ("extension", "email", "sent")]


@pytest.mark.gdpr("Art. 12(3)")
def test_art12_3_a_letter_the_smtp_server_refuses_is_recorded_as_failed_not_lost(
    world: World, smtp: SmtpSink
) -> None:
    caller_with_records(
        world.rt, world.plumber.id, first=FIRST, last=LAST, phone=PHONE, email=EMAIL
    )
    world.rt.settings.smtp_port = free_port()  # no server there: the connection is refused
    world.app.state.rights_outbox = Outbox.from_settings(world.rt.settings)  # type: ignore[attr-defined]
    client = world.login(world.client_plumber)
    base = f"/api/v1/accounts/{world.plumber.id}/rights/requests"
    r = client.post(base, json={"kind": "access", "requester": {"email": EMAIL}})
    assert r.status_code == 201, r.text  # the request is taken in all the same
    [letter] = _letters(world)
    assert (letter.kind, letter.channel, letter.status) == ("received", "email", "failed")
    assert letter.error and EMAIL not in letter.error
    page = world.login(world.dpo).get(f"/dpo/droits/{world.plumber.id}/{r.json()['id']}")
    assert "renvoyez-le ou postez-le" in page.text
    assert not smtp.messages


@pytest.mark.gdpr("Art. 12(3)")
def test_art12_3_the_client_reads_the_letters_and_the_requesters_link_is_not_kept(
    world: World, smtp: SmtpSink
) -> None:
    caller_with_records(
        world.rt, world.plumber.id, first=FIRST, last=LAST, phone=PHONE, email=EMAIL
    )
    world.app.state.rights_outbox = Outbox.from_settings(world.rt.settings)  # type: ignore[attr-defined]
    client = world.login(world.client_plumber)
    base = f"/api/v1/accounts/{world.plumber.id}/rights/requests"
    req = client.post(
        base, json={"kind": "access", "requester": {"email": EMAIL}, "verified_by_controller": True}
    ).json()
    done = client.post(f"{base}/{req['id']}/execute")
    assert done.status_code == 200, done.text
    # The requester's letter carries its own link (the client's link is another one).
    sent = smtp.bodies()[-1]
    link = re.search(r"https?://\S+/api/v1/rights/downloads/\S+", sent)
    assert link is not None and done.json()["download_url"] != link.group(0)
    got = client.get(f"{base}/{req['id']}/letters")
    assert got.status_code == 200, got.text
    letters = got.json()
    assert [(x["kind"], x["status"]) for x in letters] == [
        ("received", "sent"),
        ("completed", "sent"),
    ]
    kept = letters[1]["text_fr"]
    assert "a été traitée" in kept and "non conservé ici" in kept
    assert link.group(0) not in kept and "/rights/downloads/" not in kept
    # The same copy on the DPO's page: nothing there can burn the requester's link.
    page = world.login(world.dpo).get(f"/dpo/droits/{world.plumber.id}/{req['id']}")
    assert "/rights/downloads/" not in page.text
    # The requester's link still works, once.
    token = link.group(0).rsplit("/", 1)[1]
    assert world.client().get(f"/api/v1/rights/downloads/{token}").status_code == 200
    # An operator may not read the letters (the controller and the DPO decide).
    assert world.login(world.operator).get(f"{base}/{req['id']}/letters").status_code == 403


@pytest.mark.gdpr("Art. 12(6)")
def test_art12_6_asking_an_unverified_requester_for_more_reaches_the_address_they_wrote_from(
    world: World, smtp: SmtpSink
) -> None:
    caller_with_records(
        world.rt, world.plumber.id, first=FIRST, last=LAST, phone=PHONE, email=EMAIL
    )
    world.app.state.rights_outbox = Outbox.from_settings(world.rt.settings)  # type: ignore[attr-defined]
    client = world.login(world.client_plumber)
    base = f"/api/v1/accounts/{world.plumber.id}/rights/requests"
    wrote_from = "quelquun@exemple.fr"  # not the address on file
    req = client.post(base, json={"kind": "erasure", "requester": {"email": wrote_from}}).json()
    waited = client.post(f"{base}/{req['id']}/wait", json={"reason": "scope_unclear"})
    assert waited.status_code == 200, waited.text
    # Both letters disclose nothing: they go where the request came from, never on file.
    assert [to for _f, to, _raw in smtp.messages] == [[wrote_from], [wrote_from]]
    assert "précisions sur l'objet de votre demande" in smtp.bodies()[-1]
    # A letter that discloses (a refusal) waits for a verified contact: to post, not e-mailed.
    refused = client.post(
        f"{base}/{req['id']}/refuse",
        json={
            "reason": "identity_not_verified",
            "explanation": "Aucune réponse à notre demande.",
            "cnil_complaint_informed": True,
            "judicial_remedy_informed": True,
        },
    )
    assert refused.status_code == 200, refused.text
    assert refused.json()["channel"] == "letter" and len(smtp.messages) == 2
