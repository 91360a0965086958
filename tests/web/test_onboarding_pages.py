"""Onboarding through the pages and the JSON API: the DPO records a session (with its
attestation) and a renewal, reads the attestation; who may not gets a 403; a staff member
who has not signed the undertaking is sent to it, signs it, and reaches the console."""

from __future__ import annotations

import base64
import datetime as dt
import re

from sqlalchemy import select

from permanence.calls import service as calls
from permanence.context import AccessContext, Role
from permanence.staff import onboarding, training
from permanence.staff.model import TrainingRecord
from tests.web.conftest import World, make_person
from tests.web.pages_helpers import csrf_of, page_login

PDF = b"%PDF-1.4\nfeuille d'emargement\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 32


def _records(world: World, user_id: object) -> list[TrainingRecord]:
    with world.rt.db.session(AccessContext(role=Role.DPO, reason="test"), readonly=True) as s:
        return list(s.scalars(select(TrainingRecord).where(TrainingRecord.user_id == user_id)))


def test_the_dpo_records_a_session_from_the_training_page(world: World) -> None:
    new = make_person(world.rt, Role.OPERATOR, "recrue@permanence.example", trained=False)
    c, csrf = page_login(world, world.dpo)
    page = c.get("/dpo/formation")
    assert page.status_code == 200
    assert "Enregistrer une séance de formation" in page.text
    assert "jamais enregistrée" in page.text and "non signé" in page.text
    today = onboarding.paris_today().isoformat()
    form = {
        "csrf_token": csrf,
        "personnes": [str(new.id), str(world.supervisor.id)],
        "module": training.REQUIRED_COURSE,
        "date": today,
        "formateur": "Formatrice interne",
        "duree": "120",
    }
    r = c.post(
        "/dpo/formation",
        data=form,
        files={"attestation": ("feuille.pdf", PDF, "application/pdf")},
    )
    assert r.status_code == 303, r.text
    done = c.get(r.headers["location"])
    assert "Formation enregistrée pour 2 membre(s) du personnel." in done.text
    (rec,) = _records(world, new.id)
    assert rec.trainer == "Formatrice interne" and rec.duration_minutes == 120
    link = f"/dpo/formation/attestations/{rec.attestation_id}"
    assert link in done.text
    got = c.get(link)
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert "attachment" in got.headers["content-disposition"]

    # Refusals say what is wrong, in French, and write nothing.
    bad = [
        ({"module": "inconnu"}, None, 422, "Ce module ne figure pas au catalogue."),
        ({"date": "2999-01-01"}, None, 422, "La date de la formation est dans le futur."),
        ({"duree": "beaucoup"}, None, 422, "La durée doit être un nombre de minutes"),
        ({"personnes": []}, None, 422, "Choisissez au moins un membre du personnel"),
        ({"personnes": ["pas-un-identifiant"]}, None, 404, "Choisissez au moins un membre"),
        ({}, ("photo.gif", b"GIF89a", "image/gif"), 415, "doit être un fichier PDF, PNG ou JPEG"),
        ({}, ("gros.pdf", b"%PDF-" + b"0" * 600_000, "application/pdf"), 413, "512 Kio"),
    ]
    for change, upload, status, text in bad:
        r = c.post(
            "/dpo/formation",
            data={**form, **change},
            files={"attestation": upload} if upload else None,
        )
        assert r.status_code == status, (change, r.status_code)
        assert text in r.text, (change, r.text[:2000])
    assert len(_records(world, new.id)) == 1


def test_renewal_in_one_step(world: World) -> None:
    late = make_person(world.rt, Role.OPERATOR, "ancienne@permanence.example", trained=False)
    with world.rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        training.record_training(
            s, late.id, completed_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=360)
        )
        training.sign_undertaking(s, late.id)
    c, csrf = page_login(world, world.dpo)
    page = c.get("/dpo/formation").text
    assert "expire bientôt" in page
    assert f'name="personne" value="{late.id}"' in page
    r = c.post(
        "/dpo/formation/renouveler",
        data={"csrf_token": csrf, "personne": str(late.id), "module": training.REQUIRED_COURSE},
    )
    assert r.status_code == 303
    assert len(_records(world, late.id)) == 2
    after = c.get("/dpo/formation").text
    assert f'name="personne" value="{late.id}"' not in after
    assert "Aucune formation n’expire dans les 30 jours." in after


def test_who_may_not_gets_a_403(world: World) -> None:
    new = make_person(world.rt, Role.OPERATOR, "recrue2@permanence.example", trained=False)
    form = {
        "personnes": str(new.id),
        "module": training.REQUIRED_COURSE,
        "date": onboarding.paris_today().isoformat(),
    }
    op, csrf = page_login(world, world.operator)
    assert op.get("/dpo/formation").status_code == 403
    assert op.post("/dpo/formation", data={**form, "csrf_token": csrf}).status_code == 403
    sup, csrf = page_login(world, world.supervisor)
    page = sup.get("/dpo/formation")
    assert page.status_code == 200 and "Enregistrer une séance" not in page.text
    assert sup.post("/dpo/formation", data={**form, "csrf_token": csrf}).status_code == 403
    # Without the CSRF token: refused too.
    dpo, _csrf = page_login(world, world.dpo)
    assert dpo.post("/dpo/formation", data=form).status_code == 403
    assert _records(world, new.id) == []


def test_the_api_records_training_for_the_dpo_and_admin_only(world: World) -> None:
    new = make_person(world.rt, Role.OPERATOR, "recrue3@permanence.example", trained=False)
    body = {
        "user_ids": [str(new.id)],
        "course": training.REQUIRED_COURSE,
        "completed_on": onboarding.paris_today().isoformat(),
        "trainer": "Organisme agréé",
        "duration_minutes": 60,
        "attestation_base64": base64.b64encode(JPEG).decode(),
    }
    for who in (world.operator, world.supervisor, world.client_medical):
        c = world.login(who)
        assert c.post("/api/v1/staff/training", json=body).status_code == 403
        # Other staff members' training is not reachable either.
        assert c.get("/api/v1/staff/training").status_code == 403
    assert world.client().post("/api/v1/staff/training", json=body).status_code == 401
    admin = world.login(world.admin)
    r = admin.post("/api/v1/staff/training", json=body)
    assert r.status_code == 201, r.text
    (rec,) = r.json()
    assert rec["trainer"] == "Organisme agréé" and rec["attestation_id"]
    # The administrator records, only the DPO reads the attestation.
    path = f"/api/v1/staff/training/attestations/{rec['attestation_id']}"
    assert admin.get(path).status_code == 403
    assert world.login(world.operator).get(path).status_code == 403
    assert world.login(new).get(path).status_code == 403  # not even the person trained
    dpo = world.login(world.dpo)
    got = dpo.get(path)
    assert got.status_code == 200 and got.content == JPEG
    board = dpo.get("/api/v1/staff/training").json()
    (row,) = [s for s in board["staff"] if s["user_id"] == str(new.id)]
    assert row["status"] == "valid" and row["undertaking_signed_at"] is None
    assert row["cleared"] is False

    refusals = [
        ({"course": "inconnu"}, 422, "unknown training module"),
        ({"completed_on": "2999-01-01"}, 422, "in the future"),
        ({"user_ids": []}, 422, "user_ids"),
        ({"duration_minutes": 0}, 422, "duration_minutes"),
        ({"attestation_base64": base64.b64encode(b"GIF89a").decode()}, 415, "PDF, PNG or JPEG"),
        ({"attestation_base64": "pas du base64 !"}, 422, "not valid base64"),
        (
            {"attestation_base64": base64.b64encode(b"%PDF-" + b"0" * 600_000).decode()},
            413,
            "larger than 512 KiB",
        ),
    ]
    for change, status, text in refusals:
        r = dpo.post("/api/v1/staff/training", json={**body, **change})
        assert r.status_code == status, (change, r.text)
        assert text in r.text, (change, r.text)
    assert len(_records(world, new.id)) == 1


def test_an_unsigned_staff_member_signs_the_undertaking_first(world: World) -> None:
    new = make_person(world.rt, Role.OPERATOR, "recrue4@permanence.example", trained=False)
    with world.rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        training.record_training(s, new.id)
    # The API names what is missing.
    api = world.login(new)
    r = api.post("/api/v1/calls", json={"dialled": "+33240000001", "caller_number": None})
    assert r.status_code == 403 and "confidentiality undertaking" in r.json()["message"]
    text = api.get("/api/v1/me/undertaking").json()
    assert text["version"] == training.UNDERTAKING_VERSION and text["signed"] is False
    assert text["text_fr"] and text["text_en"]

    # Signing in through the page leads to the undertaking, then back to the console.
    c = world.client()
    c.follow_redirects = False
    form = c.get("/connexion")
    r = c.post(
        "/connexion",
        data={
            "email": new.email,
            "password": "un mot de passe de test",
            "totp": new.code() or "",
            "csrf_token": csrf_of(form.text),
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/engagement?suite=/console"
    page = c.get(r.headers["location"])
    assert (
        "Engagement de confidentialité" in page.text and "strictement confidentielles" in page.text
    )
    csrf = csrf_of(page.text)
    # A page that touches personal data sends them back to it, then where they were.
    with world.rt.db.session(AccessContext(role=Role.SYSTEM, reason="test:telephony")) as s:
        call = calls.open_call(
            s, world.rt.keyring, dialled="+33240000001", caller_number="0199001234"
        ).call.id
    screen = f"/console/appels/{world.plumber.id}/{call}"
    refused = c.get(screen)
    assert refused.status_code == 303
    assert refused.headers["location"] == f"/engagement?suite={screen}"
    taken = c.post(
        f"{screen}/prendre",
        data={"csrf_token": csrf},
        headers={"Referer": "http://testserver/console"},
    )
    assert taken.status_code == 303 and taken.headers["location"] == "/engagement?suite=/console"
    unticked = c.post(
        "/engagement", data={"csrf_token": csrf, "version": "2026-1", "suite": "/console"}
    )
    assert unticked.status_code == 422 and "Cochez la case" in unticked.text
    stale = c.post(
        "/engagement",
        data={"csrf_token": csrf, "version": "2020-1", "lu": "oui", "suite": "/console"},
    )
    assert stale.status_code == 409
    r = c.post(
        "/engagement",
        data={"csrf_token": csrf, "version": "2026-1", "lu": "oui", "suite": "/console"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/console"
    assert c.get("/console").status_code == 200
    assert "Vous avez signé cette version" in c.get("/engagement").text
    assert api.get("/api/v1/me/undertaking").json()["signed"] is True
    ok = api.post("/api/v1/calls", json={"dialled": "+33240000001", "caller_number": None})
    assert ok.status_code == 201, ok.text
    # The DPO sees the date it was signed.
    dpo, _ = page_login(world, world.dpo)
    row = re.search(r"<td>recrue4</td>.*?</tr>", dpo.get("/dpo/formation").text, re.S)
    assert row and "signé le" in row.group(0)
    # A client user has no undertaking to sign.
    client, _ = page_login(world, world.client_plumber)
    assert client.get("/engagement").status_code == 403


def test_the_pages_speak_english_when_asked(world: World) -> None:
    new = make_person(world.rt, Role.OPERATOR, "recrue5@permanence.example", trained=False)
    dpo, _ = page_login(world, world.dpo)
    dpo.cookies.set("permanence_lang", "en")
    page = dpo.get("/dpo/formation").text
    assert "Record a training session" in page and "never recorded" in page
    c, _ = page_login(world, new)
    c.cookies.set("permanence_lang", "en")
    page = c.get("/engagement").text
    assert "Confidentiality undertaking" in page and "strictly confidential" in page
    assert "confidentielles" not in page
