"""The client's side of a breach in its portal: its own Art. 34 decision with the draft to its
callers, the pre-filled CNIL notification, refusals said in French; the DPO desk no longer
offers either the "unlikely risk" path or an Art. 34 decision for the client."""

from __future__ import annotations

import datetime as dt
import re

from permanence.breaches import service as breaches
from permanence.context import AccessContext, Role
from permanence.db import utcnow
from tests.web.conftest import World
from tests.web.pages_helpers import page_login

DPO = AccessContext(role=Role.DPO, reason="test")


def _notified(world: World) -> str:
    with world.rt.db.session(DPO) as s:
        b = breaches.open_breach(
            s,
            aware_at=utcnow() - dt.timedelta(hours=3),
            nature="Compte d'une opératrice utilisé par un tiers",
        )
        breaches.add_account(s, b.id, world.medical.id, subjects=7, records=9)
        breaches.notify_controllers(s, b.id, mailer=None, portal_url="https://p.example")
        return b.reference


def _alert(html: str) -> str:
    found = re.search(r'<div class="alert error"[^>]*>(.*?)</div>', html, re.S)
    assert found, "no error box on the page"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1)))


def test_art34_client_records_its_decision_and_reads_the_prefilled_cnil_form(
    world: World,
) -> None:
    reference = _notified(world)
    client, csrf = page_login(world, world.client_medical)
    listing = client.get("/portail/violations").text
    assert f"/portail/violations/{reference}" in listing
    page = client.get(f"/portail/violations/{reference}").text
    assert "Vos décisions de responsable du traitement" in page
    assert "Projet de message aux personnes concernées" in page and "Madame, Monsieur" in page
    # The "encrypted" exception is not offered: the data was seen in clear.
    assert 'value="encrypted"' not in page
    r = client.post(
        f"/portail/violations/{reference}/personnes",
        data={"decision": "not_required", "motif": "encrypted", "csrf_token": csrf},
    )
    assert r.status_code == 422
    assert "L’exception « données chiffrées » (art. 34(3)(a)) ne s’applique pas" in _alert(r.text)
    r = client.post(
        f"/portail/violations/{reference}/personnes",
        data={"decision": "not_required", "csrf_token": csrf},
    )
    assert r.status_code == 422 and "Choisissez le motif" in _alert(r.text)
    r = client.post(
        f"/portail/violations/{reference}/personnes",
        data={"decision": "communicate", "csrf_token": csrf},
    )
    assert r.status_code == 303
    page = client.get(r.headers["location"]).text
    assert "Votre décision sur l’information des personnes concernées est enregistrée" in page
    decision = re.search(r'id="decision-art34">(.*?)</strong>', page, re.S)
    assert decision and "les personnes concernées sont informées" in decision.group(1)
    form = client.get(f"/portail/violations/{reference}/cnil").text
    assert "Organisme (responsable du traitement)" in form
    assert "Cabinet du Dr Claire Lefèvre" in form and "À compléter par vous" in form
    assert "oui : les personnes concernées sont informées (article 34)" in form
    # The DPO sees the client's decision and has no form to take it in the client's place.
    dpo, dpo_csrf = page_login(world, world.dpo)
    desk = dpo.get(f"/dpo/violations/{reference}").text
    assert "il les informe" in desk
    assert f'action="/dpo/violations/{reference}/personnes"' not in desk
    assert 'value="unlikely_risk"' not in desk
    r = dpo.post(
        f"/dpo/violations/{reference}/personnes",
        data={"decision": "not_required", "motif": "no_high_risk", "csrf_token": dpo_csrf},
    )
    assert r.status_code in (404, 405)
    r = dpo.post(
        f"/dpo/violations/{reference}/decision",
        data={"decision": "not_notified", "motif": "no_personal_data", "csrf_token": dpo_csrf},
    )
    assert r.status_code == 409
    assert "Les clients ont déjà été notifiés de cette violation" in _alert(r.text)


def test_a_client_not_notified_sees_nothing_of_the_breach(world: World) -> None:
    reference = _notified(world)
    other, csrf = page_login(world, world.client_plumber)
    assert other.get(f"/portail/violations/{reference}").status_code == 404
    assert other.get(f"/portail/violations/{reference}/cnil").status_code == 404
    r = other.post(
        f"/portail/violations/{reference}/personnes",
        data={"decision": "communicate", "csrf_token": csrf},
    )
    assert r.status_code == 404
    staff, _csrf = page_login(world, world.operator)
    assert staff.get(f"/portail/violations/{reference}/cnil").status_code == 403


def test_art33_5_the_register_page_says_the_missing_items_and_the_notice_in_french(
    world: World,
) -> None:
    reference = _notified(world)  # nature only: a first, incomplete notice
    dpo, _ = page_login(world, world.dpo)
    page = dpo.get("/dpo/violations").text
    section = page.split(f">{reference}</a>")[1].split("</section>")[0]
    assert "Point de contact" in section and "Mesures prises ou envisagées" in section
    assert "contact point" not in section and "(d) measures" not in section
    assert "envoyée aux clients concernés" in section


def test_art28_the_client_reads_the_subprocessor_register_in_french(world: World) -> None:
    from permanence.contracts import service as contracts

    with world.rt.db.session(DPO) as s:
        contracts.register_initial(
            s,
            code="twilio",
            name="Twilio Inc.",
            service="téléphonie",
            country="US",
            safeguard="standard_contractual_clauses",
            host="twilio.com",
        )
    client, _ = page_login(world, world.client_plumber)
    page = client.get("/portail/contrat").text
    row = page.split("Twilio Inc.")[1].split("</tr>")[0]
    assert "clauses contractuelles types (art. 46(2)(c))" in row and "en vigueur" in row
    assert "standard_contractual_clauses" not in page and ">active<" not in page
