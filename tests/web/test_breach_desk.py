"""The breach desk in the DPO pages: a breach opened, scoped, described, decided and notified
from the browser, the client told by a real SMTP server and on its portal; and every refusal
shown again as a clear message, with nothing written."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from permanence.breaches import service as breaches
from permanence.breaches.model import Breach, BreachAccount, BreachNotice
from permanence.context import AccessContext
from permanence.subjects import service as subjects
from tests.conftest import SmtpSink
from tests.factories import ctx_for, make_caller
from tests.web.conftest import World
from tests.web.pages_helpers import page_login

PARIS = ZoneInfo("Europe/Paris")
NATURE = "Ordinateur portable d'une opératrice volé dans un train, session ouverte"
CONTENTS = {
    "nature": NATURE,
    "donnees": ["identity", "contact"],
    "personnes": ["callers"],
    "contact": "dpo@permanence.example",
    "consequences": "Risque d'appels frauduleux se réclamant de l'entreprise",
    "mesures": "Sessions fermées, mot de passe et TOTP renouvelés, poste effacé à distance",
}


def local(when: dt.datetime) -> str:
    """A ``datetime-local`` value, Paris time, as the browser sends it."""
    return when.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")


def alert(html: str) -> str:
    """The text of the page's error box (what the refusal says)."""
    found = re.search(r'<div class="alert error"[^>]*>(.*?)</div>', html, re.S)
    assert found, "no error box on the page"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1)))


def no_inline_code(html: str) -> None:
    """The CSP forbids inline scripts, styles and handlers (as test_pages checks elsewhere)."""
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html)


def stored(world: World) -> list[Breach]:
    with world.rt.db.session(AccessContext.system("test"), readonly=True) as s:
        return list(s.scalars(select(Breach)))


def open_one(dpo: TestClient, csrf: str, aware: dt.datetime, nature: str = NATURE) -> str:
    r = dpo.post(
        "/dpo/violations/nouvelle",
        data={"prise": local(aware), "nature": nature, "csrf_token": csrf},
    )
    assert r.status_code == 303, r.text
    path = r.headers["location"]
    assert path.endswith("?fait=ouverte")
    return path.split("?")[0].rsplit("/", 1)[1]


def operator_reads(world: World, account_id: uuid.UUID, caller: uuid.UUID) -> None:
    ctx = ctx_for(account_id, actor_id=world.operator.id, reason="call:x")
    with world.rt.db.session(ctx) as s:
        subjects.identity(s, world.rt.keyring, subjects.get(s, caller))


@pytest.mark.gdpr("Art. 33(2)")
def test_open_scope_describe_decide_notify_and_the_client_reads_the_notice(
    world: World, smtp: SmtpSink
) -> None:
    world.rt.settings.public_base_url = "https://permanence.example"
    dpo, csrf = page_login(world, world.dpo)
    # Reached from the DPO home and the register; the form proposes now, Paris time.
    assert "/dpo/violations/nouvelle" in dpo.get("/dpo/journal").text
    assert "/dpo/violations/nouvelle" in dpo.get("/dpo/violations").text
    form = dpo.get("/dpo/violations/nouvelle").text
    proposed = re.search(r'name="prise" type="datetime-local" required value="([^"]+)"', form)
    assert proposed is not None
    aware_shown = dt.datetime.fromisoformat(proposed.group(1)).replace(tzinfo=PARIS)
    assert abs(aware_shown - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=2)

    # The compromised operator read one plumber's caller in the window.
    caller = make_caller(world.rt, world.plumber.id, last="Lemoine", phone="06 12 34 56 78")
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    operator_reads(world, world.plumber.id, caller)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)

    reference = open_one(dpo, csrf, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert re.fullmatch(r"V-\d{4}-001", reference)
    page = dpo.get(f"/dpo/violations/{reference}?fait=ouverte").text
    assert "La violation est ouverte" in page
    assert "Reste à décrire" in page and "Point de contact" in page  # Art. 33(3) items
    assert re.search(r"\d+ h \d\d min restantes", page)  # the 24-hour clock runs

    # Scope: the staff account is chosen from a list (deactivated ones included).
    assert f'<option value="{world.operator.id}"' in page
    r = dpo.post(
        f"/dpo/violations/{reference}/perimetre",
        data={
            "compte_personnel": str(world.operator.id),
            "du": local(start),
            "au": local(end),
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 303, r.text
    page = dpo.get(r.headers["location"]).text
    assert "1 appelant(s) dans 1 compte(s) client" in page
    assert (
        "Plomberie Durand" in page
        and "Cabinet Lefevre" not in page.split("Clients concernés")[1].split("</table>")[0]
    )

    # Describe (Art. 33(3)), decide, preview the notice.
    r = dpo.post(f"/dpo/violations/{reference}/contenu", data={**CONTENTS, "csrf_token": csrf})
    assert r.status_code == 303, r.text
    page = dpo.get(r.headers["location"]).text
    assert "Le contenu est complet." in page
    r = dpo.post(
        f"/dpo/violations/{reference}/decision",
        data={"decision": "notify", "csrf_token": csrf},
    )
    assert r.status_code == 303, r.text
    preview = dpo.get(f"/dpo/violations/{reference}/avis/{world.plumber.id}").text
    for html in (form, page, preview):
        no_inline_code(html)
    assert "article 33(2)" in preview and "poste effacé à distance" in preview
    assert smtp.messages == []  # a preview sends nothing

    # Notify: the client is told by e-mail (a link only) and on its portal.
    r = dpo.post(f"/dpo/violations/{reference}/notifier", data={"csrf_token": csrf})
    assert r.status_code == 303, r.text
    page = dpo.get(r.headers["location"]).text
    assert "1 avis envoyé(s)." in page
    sent = page.split('id="avis-envoyes"')[1].split("</table>")[0]
    assert "Plomberie Durand" in sent and "Cabinet Lefevre" not in sent
    assert re.search(r"<span class=\"badge ok-badge\">respecté</span>", page)  # 24 h met
    recipients = {to for _frm, tos, _raw in smtp.messages for to in tos}
    assert world.client_plumber.email in recipients
    assert world.client_medical.email not in recipients
    bodies = smtp.bodies()
    assert all(NATURE not in body and "Lemoine" not in body for body in bodies)
    link = re.search(r"https://permanence\.example(/portail/violations/\S+)", bodies[0])
    assert link is not None and link.group(1) == f"/portail/violations/{reference}"

    client, _ = page_login(world, world.client_plumber)
    notice = client.get(link.group(1))
    assert notice.status_code == 200
    assert "poste effacé à distance" in notice.text and reference in notice.text
    no_inline_code(notice.text)
    assert "poste effacé à distance" in client.get("/portail/violations").text
    other, _ = page_login(world, world.client_medical)
    assert other.get(link.group(1)).status_code == 404
    assert "poste effacé à distance" not in other.get("/portail/violations").text

    # Close: the breach stays in the register, its forms are gone.
    r = dpo.post(f"/dpo/violations/{reference}/cloture", data={"csrf_token": csrf})
    assert r.status_code == 303, r.text
    page = dpo.get(r.headers["location"]).text
    assert "Clôturée" in page and "/contenu" not in page


def test_a_screened_nature_a_bad_date_and_a_future_date_are_refused_and_nothing_is_written(
    world: World,
) -> None:
    dpo, csrf = page_login(world, world.dpo)
    r = dpo.post(
        "/dpo/violations/nouvelle",
        data={
            "prise": local(dt.datetime.now(dt.UTC)),
            "nature": "Le patient joignable au 06 12 34 56 78 a reçu le message d'un autre",
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 422
    said = alert(r.text)
    assert "contient des données personnelles (PHONE)" in said and "06 12" not in said
    assert 'id="nature"' in r.text and 'aria-invalid="true"' in r.text
    for prise, expected in (
        ("hier soir", "saisissez une date et une heure"),
        ("0001-01-01T00:00", "saisissez une date et une heure"),
        ("", "est obligatoire"),
        (local(dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)), "ne peut pas être dans le futur"),
    ):
        r = dpo.post(
            "/dpo/violations/nouvelle",
            data={
                "prise": prise,
                "nature": "Perte du portable de la permanence",
                "csrf_token": csrf,
            },
        )
        assert r.status_code == 422, prise
        assert expected in alert(r.text), prise
        assert "Perte du portable de la permanence" in r.text  # what was typed is kept
    assert stored(world) == []


def test_refusals_on_a_breach_are_said_in_french_and_write_nothing(world: World) -> None:
    dpo, csrf = page_login(world, world.dpo)
    reference = open_one(dpo, csrf, dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    base = f"/dpo/violations/{reference}"
    now = dt.datetime.now(dt.UTC)

    # A window that ends before it starts.
    r = dpo.post(
        f"{base}/perimetre",
        data={
            "compte_personnel": str(world.operator.id),
            "du": local(now),
            "au": local(now - dt.timedelta(hours=1)),
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 422
    assert "La fin de la fenêtre doit être après son début" in alert(r.text)
    # A staff account that is not in the list.
    r = dpo.post(
        f"{base}/perimetre",
        data={
            "compte_personnel": str(uuid.uuid4()),
            "du": local(now - dt.timedelta(hours=1)),
            "au": local(now),
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 422 and "Choisissez le compte du personnel" in alert(r.text)
    # Personal data in the contents; a count that is not a number.
    r = dpo.post(
        f"{base}/contenu",
        data={**CONTENTS, "consequences": "Écrire à camille.martin@exemple.fr", "csrf_token": csrf},
    )
    assert r.status_code == 422
    said = alert(r.text)
    assert "« Conséquences probables » contient des données personnelles (EMAIL)" in said
    assert "camille" not in said
    r = dpo.post(f"{base}/contenu", data={**CONTENTS, "nb_personnes": "douze", "csrf_token": csrf})
    assert r.status_code == 422 and "saisissez un nombre entier" in alert(r.text)
    r = dpo.post(f"{base}/contenu", data={**CONTENTS, "nb_personnes": "9" * 30, "csrf_token": csrf})
    assert r.status_code == 422 and "ce nombre est trop grand" in alert(r.text)
    # Notifying with no client named yet.
    r = dpo.post(f"{base}/notifier", data={"csrf_token": csrf})
    assert r.status_code == 422
    assert "Aucun client n’est encore concerné" in alert(r.text)
    # Not notifiable needs its reason; closing needs clients notified or the incident documented.
    r = dpo.post(f"{base}/decision", data={"decision": "not_notified", "csrf_token": csrf})
    assert r.status_code == 422 and "Choisissez le motif" in alert(r.text)
    r = dpo.post(f"{base}/cloture", data={"csrf_token": csrf})
    assert r.status_code == 409 and "Nommez les clients concernés et notifiez-les" in alert(r.text)

    [breach] = stored(world)
    assert breach.nature == NATURE and breach.consequences == "" and breach.scope_actor_id is None
    assert breach.decision == "pending" and breach.status == "open"
    with world.rt.db.session(AccessContext.system("test"), readonly=True) as s:
        assert s.scalars(select(BreachNotice)).all() == []
        assert s.scalars(select(BreachAccount)).all() == []

    # Documented as not notifiable, with its reason, then closed.
    r = dpo.post(
        f"{base}/decision",
        data={"decision": "not_notified", "motif": "false_alarm", "csrf_token": csrf},
    )
    assert r.status_code == 303
    page = dpo.get(base).text
    assert "l'incident n'a pas constitué une violation" in page.replace("’", "'")
    r = dpo.post(f"{base}/notifier", data={"csrf_token": csrf})
    assert r.status_code == 409 and "documentée comme non notifiable" in alert(r.text)


def test_a_client_added_by_hand_and_the_english_page(world: World) -> None:
    dpo, csrf = page_login(world, world.dpo)
    reference = open_one(dpo, csrf, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30))
    r = dpo.post(
        f"/dpo/violations/{reference}/comptes",
        data={
            "compte": str(world.medical.id),
            "nb_personnes": "-3",
            "nb_enregistrements": "5",
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 422 and "ne peuvent pas être négatifs" in alert(r.text)
    r = dpo.post(
        f"/dpo/violations/{reference}/comptes",
        data={
            "compte": str(world.medical.id),
            "nb_personnes": "40",
            "nb_enregistrements": "55",
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 303
    with world.rt.db.session(AccessContext.system("test"), readonly=True) as s:
        view = breaches.breach_view(s, breaches.breach_by_reference(s, reference).id)
    assert [(a.slug, a.subjects, a.records) for a in view.accounts] == [("cabinet-lefevre", 40, 55)]
    assert view.breach.approx_subjects == 40
    dpo.cookies.set("permanence_lang", "en")
    page = dpo.get(f"/dpo/violations/{reference}").text
    assert "Breach " + reference in page and "Still to describe" in page
    r = dpo.post(f"/dpo/violations/{reference}/decision", data={"csrf_token": csrf})
    assert r.status_code == 422 and "Choose a decision." in alert(r.text)


def test_only_the_dpo_desk_works_breaches(world: World) -> None:
    dpo, csrf = page_login(world, world.dpo)
    reference = open_one(dpo, csrf, dt.datetime.now(dt.UTC))
    admin, _ = page_login(world, world.admin)
    assert admin.get(f"/dpo/violations/{reference}").status_code == 200
    for who in (world.operator, world.supervisor, world.client_plumber):
        c, their_csrf = page_login(world, who)
        for path in (
            "/dpo/violations/nouvelle",
            f"/dpo/violations/{reference}",
            f"/dpo/violations/{reference}/avis/{world.plumber.id}",
        ):
            assert c.get(path).status_code == 403, (who.role, path)
        r = c.post(f"/dpo/violations/{reference}/cloture", data={"csrf_token": their_csrf})
        assert r.status_code == 403, who.role
        r = c.post(
            "/dpo/violations/nouvelle",
            data={"prise": local(dt.datetime.now(dt.UTC)), "csrf_token": their_csrf},
        )
        assert r.status_code == 403, who.role
    # No CSRF token, an unknown breach, a malformed reference, an account not concerned.
    anonymous_form = TestClient(world.app, follow_redirects=False)  # type: ignore[arg-type]
    assert anonymous_form.get(f"/dpo/violations/{reference}").status_code == 303
    assert dpo.post(f"/dpo/violations/{reference}/cloture").status_code == 403
    assert dpo.get("/dpo/violations/V-2001-999").status_code == 404
    assert dpo.get("/dpo/violations/<script>").status_code == 404
    assert dpo.get(f"/dpo/violations/{reference}/avis/{world.plumber.id}").status_code == 404
    assert len(stored(world)) == 1 and stored(world)[0].status == "open"
