"""The server-rendered pages, through an HTTP client: sign-in, CSRF, the operator's workflow,
the client portal, the DPO desk and administration — as owner, other account and wrong role."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from fastapi.testclient import TestClient
from sqlalchemy import select

from permanence.audit.model import AuditEntry
from permanence.calls import service as calls
from permanence.context import AccessContext, Role
from permanence.messages import service as messages
from permanence.messages.model import Message
from permanence.web.security import CSP
from tests.factories import ctx_for, make_caller
from tests.web.conftest import PASSWORD, World
from tests.web.pages_helpers import csrf_of, page_login

PLUMBER_DID = "+33240000001"
NAME, PHONE = "Lemoine", "06 12 34 56 78"
INTERVENTION = {
    "motif": "intervention",
    "f_last_name": NAME,
    "f_phone": PHONE,
    "f_address": "5 rue des Lilas, 44000 Nantes",
    "f_urgency": "à planifier",
    "f_description": "Le chauffe-eau ne chauffe plus.",
}


def ring(world: World, did: str = PLUMBER_DID) -> tuple[uuid.UUID, uuid.UUID]:
    with world.rt.db.session(AccessContext(role=Role.SYSTEM, reason="test:telephony")) as s:
        opened = calls.open_call(s, world.rt.keyring, dialled=did, caller_number=PHONE)
        return opened.account.id, opened.call.id


def message_for_plumber(world: World) -> uuid.UUID:
    caller = make_caller(world.rt, world.plumber.id, last=NAME, phone=PHONE)
    with world.rt.db.session(ctx_for(world.plumber.id)) as s:
        msg = messages.take_message(
            s,
            world.rt.keyring,
            caller_id=caller,
            purpose="intervention",
            values={k[2:]: v for k, v in INTERVENTION.items() if k.startswith("f_")},
        )
        return msg.id


def audit_actions(world: World) -> list[str]:
    with world.rt.db.session(AccessContext.system("test"), readonly=True) as s:
        return list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


# -- sign-in, sessions, page security ---------------------------------------------------------


def test_a_page_without_a_session_sends_to_the_sign_in_page(world: World) -> None:
    c = TestClient(world.app, follow_redirects=False)  # type: ignore[arg-type]
    r = c.get("/portail/messages?etat=new")
    assert r.status_code == 303
    assert r.headers["location"] == "/connexion?suite=/portail/messages%3Fetat%3Dnew"


def test_every_response_carries_the_strict_security_headers(world: World) -> None:
    c = TestClient(world.app)  # type: ignore[arg-type]
    for url in ("/connexion", "/static/app.css", "/static/vendor/htmx.min.js", "/api/v1/me"):
        r = c.get(url)
        assert r.headers["content-security-policy"] == CSP, url
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "camera=()" in r.headers["permissions-policy"]
    assert "script-src 'self';" in CSP and "unsafe-inline" not in CSP
    assert c.get("/connexion").headers["cache-control"] == "no-store"


def test_pages_have_no_inline_script_style_or_handler(world: World) -> None:
    """The CSP forbids them; this says which template broke it before a browser does."""
    account_id, call_id = ring(world)
    msg_id = message_for_plumber(world)
    pages = []
    op, csrf = page_login(world, world.operator)
    op.post(f"/console/appels/{account_id}/{call_id}/prendre", data={"csrf_token": csrf})
    pages += [
        op.get("/console"),
        op.get(f"/console/appels/{account_id}/{call_id}?motif=intervention"),
    ]
    client, _ = page_login(world, world.client_plumber)
    pages += [
        client.get(u)
        for u in (
            "/portail/messages",
            f"/portail/messages/{msg_id}",
            "/portail/agenda",
            "/portail/appels",
            "/portail/mandat",
        )
    ]
    admin, _ = page_login(world, world.admin)
    pages += [
        admin.get(u)
        for u in (
            "/admin/comptes",
            "/admin/utilisateurs",
            "/dpo/journal",
            f"/admin/comptes/{world.plumber.id}/mandat",
        )
    ]
    for r in pages:
        assert r.status_code == 200, r.url
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text), r.url
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", r.text), r.url


def test_the_sign_in_form_needs_its_own_csrf_cookie(world: World) -> None:
    c = TestClient(world.app, follow_redirects=False)  # type: ignore[arg-type]
    r = c.post(
        "/connexion",
        data={"email": world.client_plumber.email, "password": PASSWORD, "csrf_token": "forged"},
    )
    assert r.status_code == 403
    assert "permanence_session" not in r.cookies


def test_staff_without_the_right_code_are_refused(world: World) -> None:
    c = TestClient(world.app, follow_redirects=False)  # type: ignore[arg-type]
    form = c.get("/connexion")
    r = c.post(
        "/connexion",
        data={
            "email": world.operator.email,
            "password": PASSWORD,
            "totp": "000000",
            "csrf_token": csrf_of(form.text),
        },
    )
    assert r.status_code == 401
    assert "Adresse, mot de passe ou code non reconnu." in r.text
    assert "permanence_session" not in r.cookies


def test_a_form_without_the_sessions_csrf_token_is_refused(world: World) -> None:
    msg_id = message_for_plumber(world)
    client, _csrf = page_login(world, world.client_plumber)
    r = client.post(f"/portail/messages/{msg_id}/acquitter", data={"csrf_token": "forged"})
    assert r.status_code == 403
    assert "Accès refusé" in r.text
    with world.rt.db.session(ctx_for(world.plumber.id), readonly=True) as s:
        assert s.get(Message, msg_id).status == "new"  # type: ignore[union-attr]


def test_each_role_sees_only_its_pages(world: World) -> None:
    client, _ = page_login(world, world.client_plumber)
    assert client.get("/console").status_code == 403
    assert client.get("/dpo/journal").status_code == 403
    assert client.get("/admin/comptes").status_code == 403
    op, _ = page_login(world, world.operator)
    assert op.get("/portail/messages").status_code == 403
    assert op.get("/admin/utilisateurs").status_code == 403
    assert op.get("/dpo/journal").status_code == 403


def test_sign_out_ends_the_session(world: World) -> None:
    client, csrf = page_login(world, world.client_plumber)
    r = client.post("/deconnexion", data={"csrf_token": csrf})
    assert r.headers["location"] == "/connexion"
    assert client.get("/portail/messages").status_code == 303


# -- the operator console -----------------------------------------------------------------------


def test_the_queue_shows_ringing_calls_of_every_account_without_personal_data(world: World) -> None:
    ring(world)
    ring(world, "+33478000001")
    op, _ = page_login(world, world.operator)
    page = op.get("/console").text
    assert "2 appels en attente" in page
    assert "Plomberie Durand" in page and "Cabinet Lefevre" in page
    assert "612345678" not in page.replace(" ", "")


def test_operator_takes_a_call_is_told_the_missing_field_then_saves(world: World) -> None:
    account_id, call_id = ring(world)
    op, csrf = page_login(world, world.operator)
    r = op.post(f"/console/appels/{account_id}/{call_id}/prendre", data={"csrf_token": csrf})
    url = f"/console/appels/{account_id}/{call_id}"
    assert r.headers["location"] == url
    missing = {**INTERVENTION, "f_address": "", "csrf_token": csrf}
    r = op.post(f"{url}/enregistrer", data=missing)
    assert r.status_code == 422
    assert re.search(r'id="f_address"[^>]*aria-invalid="true"', r.text)
    assert re.search(r'id="err-address"\s*>Ce champ est obligatoire\.', r.text)
    assert f'value="{NAME}"' in r.text  # what was typed is kept
    with world.rt.db.session(ctx_for(account_id), readonly=True) as s:
        assert messages.list_messages(s) == []
    r = op.post(f"{url}/enregistrer", data={**INTERVENTION, "csrf_token": csrf})
    assert r.headers["location"] == f"{url}?enregistre=message"
    assert "Message enregistré." in op.get(r.headers["location"]).text
    op.post(f"{url}/terminer", data={"csrf_token": csrf})
    assert "terminé" in op.get("/console").text  # in "my recent calls"


def test_a_call_already_taken_cannot_be_taken_twice(world: World) -> None:
    account_id, call_id = ring(world)
    first, csrf1 = page_login(world, world.operator)
    second, csrf2 = page_login(world, world.supervisor)
    first.post(f"/console/appels/{account_id}/{call_id}/prendre", data={"csrf_token": csrf1})
    r = second.post(f"/console/appels/{account_id}/{call_id}/prendre", data={"csrf_token": csrf2})
    assert r.headers["location"] == "/console?probleme=taken"


def test_inline_validation_names_the_problem_of_the_field_left(world: World) -> None:
    account_id, call_id = ring(world)
    op, csrf = page_login(world, world.operator)
    r = op.post(
        f"/console/appels/{account_id}/{call_id}/valider",
        data={"motif": "intervention", "f_phone": "pas un numéro"},
        headers={"X-CSRF-Token": csrf, "HX-Request": "true", "HX-Trigger-Name": "f_phone"},
    )
    assert r.status_code == 200
    assert 'id="err-phone"' in r.text and "ne convient pas" in r.text
    assert "pas un numéro" not in r.text
    r = op.post(
        f"/console/appels/{account_id}/{call_id}/valider",
        data={"motif": "intervention", "f_phone": PHONE},
        headers={"X-CSRF-Token": csrf, "HX-Request": "true", "HX-Trigger-Name": "f_phone"},
    )
    assert "hidden" in r.text


def test_a_consent_purpose_asks_for_consent_before_saving(world: World) -> None:
    account_id, call_id = ring(world)
    op, csrf = page_login(world, world.operator)
    url = f"/console/appels/{account_id}/{call_id}"
    page = op.get(f"{url}?motif=satisfaction").text
    assert "L’appelant accepte" in page
    form = {"motif": "satisfaction", "f_last_name": NAME, "f_phone": PHONE, "csrf_token": csrf}
    refused = op.post(f"{url}/enregistrer", data=form)
    assert refused.status_code == 422 and "consent" in refused.text
    version = re.search(r'name="version" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    op.post(
        f"{url}/consentement",
        data={"motif": "satisfaction", "version": version, "csrf_token": csrf},
    )
    assert "Consentement enregistré" in op.get(f"{url}?motif=satisfaction").text
    assert op.post(f"{url}/enregistrer", data=form).status_code == 303


def test_an_appointment_is_booked_in_a_free_slot_from_the_screen_pop(world: World) -> None:
    account_id, call_id = ring(world)
    op, csrf = page_login(world, world.operator)
    url = f"/console/appels/{account_id}/{call_id}"
    page = op.get(f"{url}?motif=appointment").text
    assert 'name="f_preferred_slot"' not in page  # the slot is asked once
    slot = re.search(r'<option value="([^"]+/[^"]+)">', page).group(1)  # type: ignore[union-attr]
    starts = dt.datetime.fromisoformat(slot.split("/")[0])
    form = {
        "motif": "appointment",
        "f_last_name": NAME,
        "f_phone": PHONE,
        "f_address": "5 rue des Lilas",
        "creneau": slot,  # asked once: it also fills the purpose's preferred_slot
        "csrf_token": csrf,
    }
    r = op.post(f"{url}/enregistrer", data=form)
    assert r.headers["location"] == f"{url}?enregistre=rendez-vous"
    again = op.post(f"{url}/enregistrer", data=form)
    assert again.status_code == 409  # the slot is taken now
    client, _ = page_login(world, world.client_plumber)
    agenda = client.get(f"/portail/agenda?semaine={starts.date().isoformat()}").text
    assert NAME in agenda


# -- the client portal --------------------------------------------------------------------------


def test_the_client_reads_and_acknowledges_a_message_other_accounts_get_404(world: World) -> None:
    msg_id = message_for_plumber(world)
    client, csrf = page_login(world, world.client_plumber)
    listing = client.get("/portail/messages").text
    # The list shows who called (one audited read for the page, tests/web/test_portal_inbox.py).
    assert f"/portail/messages/{msg_id}" in listing and NAME in listing
    page = client.get(f"/portail/messages/{msg_id}")
    assert NAME in page.text and "Adresse de l&#39;intervention" in page.text
    assert NAME not in re.search(r"<title>(.*?)</title>", page.text).group(1)  # type: ignore[union-attr]
    client.post(f"/portail/messages/{msg_id}/acquitter", data={"csrf_token": csrf})
    assert "Pris en charge" in client.get(f"/portail/messages/{msg_id}").text
    other, other_csrf = page_login(world, world.client_medical)
    r = other.get(f"/portail/messages/{msg_id}")
    assert r.status_code == 404 and NAME not in r.text
    r = other.post(f"/portail/messages/{msg_id}/acquitter", data={"csrf_token": other_csrf})
    assert r.status_code == 404
    assert audit_actions(world).count("message.read") == 2  # the two readings above, no other


def test_the_export_needs_a_fresh_password_then_gives_the_csv(world: World) -> None:
    message_for_plumber(world)
    client, csrf = page_login(world, world.client_plumber)
    # Signing in counts as a fresh confirmation for five minutes; make it stale.
    with world.rt.db.session(AccessContext.system("test")) as s:
        from permanence.staff.model import WebSession

        for ws in s.scalars(select(WebSession)):
            ws.reauth_at = ws.reauth_at - dt.timedelta(minutes=10)
    r = client.get("/portail/export.csv")
    assert r.headers["location"] == "/confirmer?suite=/portail/export"
    wrong = client.post(
        "/confirmer", data={"password": "nope", "suite": "/portail/export", "csrf_token": csrf}
    )
    assert wrong.status_code == 401
    ok = client.post(
        "/confirmer", data={"password": PASSWORD, "suite": "/portail/export", "csrf_token": csrf}
    )
    assert ok.headers["location"] == "/portail/export"
    r = client.get("/portail/export.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert NAME in r.text and r.text.startswith("\ufeffType;Identifiant;Motif")
    assert "account.export" in audit_actions(world)


def test_the_client_moves_then_cancels_an_appointment(world: World) -> None:
    caller = make_caller(world.rt, world.plumber.id, last=NAME, phone=PHONE)
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
                "last_name": NAME,
                "phone": PHONE,
                "address": "5 rue des Lilas",
                "preferred_slot": start.isoformat(),
            },
        )
    client, csrf = page_login(world, world.client_plumber)
    week = client.get(f"/portail/agenda?semaine={start.date().isoformat()}").text
    assert NAME in week
    r = client.post(
        f"/portail/rendez-vous/{appt.id}/deplacer",
        data={
            "debut": (start + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 303 and "probleme" not in r.headers["location"]
    other, other_csrf = page_login(world, world.client_medical)
    assert (
        other.post(
            f"/portail/rendez-vous/{appt.id}/annuler", data={"csrf_token": other_csrf}
        ).status_code
        == 404
    )
    client.post(f"/portail/rendez-vous/{appt.id}/annuler", data={"csrf_token": csrf})
    assert NAME not in client.get(r.headers["location"]).text


def test_the_client_reads_its_mandate_and_asks_for_a_change(world: World) -> None:
    client, csrf = page_login(world, world.client_plumber)
    page = client.get("/portail/mandat").text
    assert "Demande d&#39;intervention" in page and "version 1" in page
    r = client.post("/portail/mandat/demande", data={"sujet": "retention", "csrf_token": csrf})
    assert r.headers["location"] == "/portail/mandat?demande=ok"
    assert "mandate.change_requested" in audit_actions(world)
    bad = client.post("/portail/mandat/demande", data={"sujet": "<b>x</b>", "csrf_token": csrf})
    assert bad.status_code == 422


def test_the_call_history_lists_calls_of_the_account_only(world: World) -> None:
    ring(world)
    ring(world, "+33478000001")
    client, _ = page_login(world, world.client_plumber)
    page = client.get("/portail/appels").text
    assert page.count("<tr>") == 2  # the header row and the plumber's one call


# -- the DPO desk and administration ----------------------------------------------------------


def test_the_dpo_filters_the_audit_log_and_verifies_the_chain(world: World) -> None:
    ring(world)
    dpo, csrf = page_login(world, world.dpo)
    page = dpo.get("/dpo/journal?action=call.").text
    assert "call.open" in page and "auth.sign_in" not in page
    r = dpo.post("/dpo/journal/verifier", data={"csrf_token": csrf})
    assert "Chaîne intacte" in r.text
    assert dpo.get("/dpo/journal?action=<script>").status_code == 404
    training = dpo.get("/dpo/formation").text
    assert "op" in training and "autorisé" in training


def test_the_mandate_editor_shows_problems_then_the_diff_then_saves(world: World) -> None:
    admin, csrf = page_login(world, world.admin)
    url = f"/admin/comptes/{world.plumber.id}/mandat"
    text = admin.get(f"/admin/comptes/{world.plumber.id}/mandat.yaml").text
    broken = admin.post(
        url,
        data={
            "texte": text.replace("legal_basis: contract", "legal_basis: whim", 1),
            "action": "apercu",
            "csrf_token": csrf,
        },
    )
    assert broken.status_code == 422 and "legal_basis" in broken.text
    changed = text.replace("escalation_after: PT15M", "escalation_after: PT20M")
    preview = admin.post(url, data={"texte": changed, "action": "apercu", "csrf_token": csrf})
    assert "+  escalation_after: PT20M" in preview.text
    saved = admin.post(url, data={"texte": changed, "action": "enregistrer", "csrf_token": csrf})
    assert saved.headers["location"] == f"{url}?enregistre=2"
    diff = admin.get(f"/admin/comptes/{world.plumber.id}/mandat-diff?de=1&a=2").text
    assert "-  escalation_after: PT15M" in diff
    upload = admin.post(
        url,
        data={"action": "apercu", "csrf_token": csrf},
        files={"fichier": ("m.yaml", changed.encode(), "application/yaml")},
    )
    assert "Aucun changement" in upload.text


def test_key_rotation_needs_a_fresh_confirmation(world: World) -> None:
    admin, csrf = page_login(world, world.admin)
    with world.rt.db.session(AccessContext.system("test")) as s:
        from permanence.staff.model import WebSession

        for ws in s.scalars(select(WebSession)):
            ws.reauth_at = ws.reauth_at - dt.timedelta(minutes=10)
    r = admin.post(f"/admin/comptes/{world.plumber.id}/cles", data={"csrf_token": csrf})
    assert r.headers["location"].startswith("/confirmer")
    admin.post(
        "/confirmer",
        data={"password": PASSWORD, "totp": world.admin.code() or "", "csrf_token": csrf},
    )
    r = admin.post(f"/admin/comptes/{world.plumber.id}/cles", data={"csrf_token": csrf})
    assert r.headers["location"] == f"/admin/comptes/{world.plumber.id}?cles=2"
    assert "keys.rotate" in audit_actions(world)


def test_the_administrator_creates_accounts_and_users(world: World) -> None:
    admin, csrf = page_login(world, world.admin)
    r = admin.post(
        "/admin/comptes",
        data={"slug": "garage-petit", "nom": "Garage Petit", "type": "trades", "csrf_token": csrf},
    )
    assert r.status_code == 303
    assert "Garage Petit" in admin.get("/admin/comptes").text
    dup = admin.post(
        "/admin/comptes",
        data={"slug": "garage-petit", "nom": "Autre", "type": "trades", "csrf_token": csrf},
    )
    assert dup.status_code == 422
    made = admin.post(
        "/admin/utilisateurs",
        data={
            "email": "nouvelle@permanence.example",
            "nom": "Nouvelle",
            "role": "operator",
            "mot_de_passe": "un mot de passe assez long",
            "csrf_token": csrf,
        },
    )
    assert "otpauth://totp/" in made.text
    assert "otpauth://" not in admin.get("/admin/utilisateurs").text  # shown once


# -- language -----------------------------------------------------------------------------------


def test_french_by_default_english_from_the_browser_or_the_choice(world: World) -> None:
    c = TestClient(world.app, follow_redirects=False)  # type: ignore[arg-type]
    assert '<html lang="fr">' in c.get("/connexion").text
    en = c.get("/connexion", headers={"Accept-Language": "en-GB,en;q=0.9,fr;q=0.5"}).text
    assert '<html lang="en">' in en and "E-mail address" in en
    r = c.get("/langue/fr?suite=/connexion", headers={"Accept-Language": "en"})
    assert r.headers["location"] == "/connexion"
    c.cookies.set("permanence_lang", "fr")
    assert "Adresse électronique" in c.get("/connexion", headers={"Accept-Language": "en"}).text
    assert c.get("/langue/en?suite=https://evil.example/").headers["location"] == "/"


def test_the_operator_stops_an_announced_recording(world: World) -> None:
    from permanence.calls.model import Call

    account_id, call_id = ring(world)
    with world.rt.db.session(ctx_for(account_id)) as s:
        s.get(Call, call_id).recording_state = "offered"  # type: ignore[union-attr]
    op, csrf = page_login(world, world.operator)
    url = f"/console/appels/{account_id}/{call_id}"
    assert "Arrêter l’enregistrement" in op.get(url).text
    r = op.post(f"{url}/enregistrement/arreter", data={"csrf_token": csrf})
    assert r.headers["location"] == url
    page = op.get(url).text
    assert "Arrêté : l’appelant s’y est opposé" in page and "Arrêter l’enregistrement" not in page
    assert "call.recording_objected" in audit_actions(world)


# -- governance: breaches, contract and sub-processors, Art. 30, compliance ---------------------


def _notified_breach(world: World) -> str:
    from permanence.breaches import service as breaches

    desk = AccessContext(role=Role.DPO, reason="breach", actor_id=world.dpo.id)
    with world.rt.db.session(desk) as s:
        b = breaches.open_breach(s, aware_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
        breaches.add_account(s, b.id, world.plumber.id, subjects=12, records=30)
        breaches.update_contents(
            s,
            b.id,
            nature="Compte d'opérateur utilisé par un tiers après hameçonnage",
            data_categories=["identity", "contact"],
            subject_categories=["callers"],
            contact_point="dpo@permanence.example",
            consequences="Risque d'appels frauduleux se réclamant de l'entreprise",
            measures="Compte bloqué, mot de passe et TOTP renouvelés",
        )
        breaches.notify_controllers(s, b.id, mailer=None, portal_url="https://p.example")
        return b.reference


def test_the_breach_register_shows_its_clocks_and_the_client_its_notice(world: World) -> None:
    reference = _notified_breach(world)
    dpo, _ = page_login(world, world.dpo)
    page = dpo.get("/dpo/violations").text
    assert reference in page and "Plomberie Durand" in page
    assert re.search(r"\d+ h \d\d min restantes", page)  # the 72-hour clock still runs
    client, _ = page_login(world, world.client_plumber)
    notices = client.get("/portail/violations").text
    assert "Compte bloqué" in notices
    other, _ = page_login(world, world.client_medical)
    assert "Compte bloqué" not in other.get("/portail/violations").text
    assert page_login(world, world.operator)[0].get("/dpo/violations").status_code == 403


def test_the_client_objects_to_a_new_subprocessor_before_it_takes_effect(world: World) -> None:
    from permanence.contracts import service as contracts

    desk = AccessContext(role=Role.DPO, reason="subprocessor", actor_id=world.dpo.id)
    with world.rt.db.session(desk) as s:
        change = contracts.propose_subprocessor(
            s,
            code="sms-eu",
            name="SMS Europe",
            service="envoi de SMS",
            country="FR",
            mailer=None,
            portal_url="https://p.example",
        )
    client, csrf = page_login(world, world.client_plumber)
    page = client.get("/portail/contrat").text
    assert "SMS Europe" in page and "S’opposer à ce changement" in page
    assert "Aucun contrat signé en vigueur." in page
    r = client.post(
        f"/portail/contrat/changements/{change.id}/objection",
        data={"motif": "location", "csrf_token": csrf},
    )
    assert r.headers["location"] == "/portail/contrat?objection=ok"
    assert "Vous vous êtes opposé" in client.get("/portail/contrat").text
    assert "subprocessor.objection" in audit_actions(world)
    other, _ = page_login(world, world.client_medical)
    assert "S’opposer à ce changement" in other.get("/portail/contrat").text  # theirs is open


def test_the_dpo_reads_the_art30_record_and_runs_the_compliance_checks(world: World) -> None:
    dpo, _ = page_login(world, world.dpo)
    record = dpo.get("/dpo/registre-art30").text
    assert "Demande d&#39;intervention" in record
    csv_export = dpo.get("/dpo/registre-art30.csv")
    assert csv_export.status_code == 200 and csv_export.headers["content-type"].startswith(
        "text/csv"
    )
    listed = dpo.get("/dpo/conformite").text
    assert "staff.training" in listed and "réussi" not in listed  # nothing run yet
    checks = dpo.post("/dpo/conformite", data={"csrf_token": csrf_of(listed)}).text
    # Every staff member of the world is trained and signed the undertaking: the check passes.
    training = re.search(
        r'<span class="badge ([\w-]+)">(\w+)</span> <strong>[^<]*</strong> '
        r"<code>staff\.training</code>",
        checks,
    )
    assert training is not None and training.groups() == ("ok-badge", "réussi"), training
    report = dpo.get("/dpo/conformite.html")
    assert report.status_code == 200 and "attachment" in report.headers["content-disposition"]
    assert "art30.export" in audit_actions(world)
