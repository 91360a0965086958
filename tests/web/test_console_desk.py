"""The console beside the form, through an HTTP client (no JavaScript): the known caller
pre-filled with only the fields the purpose declares and the focus on the first empty one; the
priority account first in the queue; the caller's history opened only with a reason, and
audited; a session that ends mid-message signs in again on a page that carries the typed text,
then saves it; the appointment's slot asked once, typed when the agenda has no free slot."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from permanence.audit.model import AuditEntry
from permanence.calls import service as calls
from permanence.context import AccessContext, Role
from permanence.messages import service as messages
from permanence.messages.model import Appointment, Message
from permanence.staff.model import WebSession
from tests.factories import ctx_for, make_caller
from tests.web.conftest import PASSWORD, World
from tests.web.pages_helpers import csrf_of, page_login

PLUMBER_DID, MEDICAL_DID = "+33240000001", "+33478000001"
NAME, PHONE, EMAIL = "Lemoine", "06 12 34 56 78", "j.lemoine@exemple.fr"
NOTE = "Merci de rappeler pour le renouvellement."


def ring(world: World, did: str) -> tuple[uuid.UUID, uuid.UUID]:
    with world.rt.db.session(AccessContext(role=Role.SYSTEM, reason="test:telephony")) as s:
        opened = calls.open_call(s, world.rt.keyring, dialled=did, caller_number=PHONE)
        return opened.account.id, opened.call.id


def known_caller(world: World, account_id: uuid.UUID) -> uuid.UUID:
    return make_caller(world.rt, account_id, first="Jeanne", last=NAME, phone=PHONE, email=EMAIL)


def rows(world: World, model: type, account_id: uuid.UUID) -> list[object]:
    with world.rt.db.session(ctx_for(account_id), readonly=True) as s:
        return list(s.scalars(select(model).where(model.account_id == account_id)))  # type: ignore[attr-defined]


def history_reads(world: World) -> list[AuditEntry]:
    with world.rt.db.session(AccessContext.system("test"), readonly=True) as s:
        return list(
            s.scalars(select(AuditEntry).where(AuditEntry.action == "subject.history_read"))
        )


def test_a_known_caller_is_prefilled_with_only_what_the_purpose_declares(world: World) -> None:
    known_caller(world, world.medical.id)
    account_id, call_id = ring(world, MEDICAL_DID)
    op, _ = page_login(world, world.operator)
    page = op.get(f"/console/appels/{account_id}/{call_id}?motif=message").text
    assert re.search(rf'id="f_last_name"[^>]*value="{NAME}"', page)
    assert re.search(r'id="f_phone"[^>]*value="\+33612345678"', page)
    # The message purpose declares no e-mail or first name: the caller's are not put in it.
    assert 'name="f_email"' not in page and 'name="f_first_name"' not in page
    assert EMAIL not in page.split('id="formulaire"')[1]
    # The focus goes to the first empty field.
    assert re.search(r'<textarea id="f_note"\s*autofocus', page)
    assert page.count("autofocus") == 1


def test_an_unknown_caller_gets_an_empty_form(world: World) -> None:
    account_id, call_id = ring(world, MEDICAL_DID)
    op, _ = page_login(world, world.operator)
    page = op.get(f"/console/appels/{account_id}/{call_id}?motif=message").text
    assert re.search(r'id="f_last_name"\s*autofocus', page)
    assert NAME not in page


def test_a_priority_account_comes_first_and_stands_out(world: World) -> None:
    ring(world, PLUMBER_DID)  # the older call
    ring(world, MEDICAL_DID)  # a medical practice: priority
    op, _ = page_login(world, world.operator)
    page = op.get("/console").text
    queue = page.split('id="file-attente"')[1]
    assert queue.index("Cabinet Lefevre") < queue.index("Plomberie Durand")
    assert re.search(r'class="priority"[^<]*<form[^>]*>.*?Cabinet Lefevre', queue, re.S)
    assert queue.count("Prioritaire") == 1
    assert re.search(r'data-waited="\d+"', queue)


def test_the_history_is_read_only_with_a_reason_and_is_audited(world: World) -> None:
    caller = known_caller(world, world.plumber.id)
    with world.rt.db.session(ctx_for(world.plumber.id)) as s:
        messages.take_message(
            s,
            world.rt.keyring,
            caller_id=caller,
            purpose="intervention",
            values={
                "last_name": NAME,
                "phone": PHONE,
                "address": "5 rue des Lilas",
                "urgency": "à planifier",
                "description": "Fuite sous l'évier.",
            },
        )
    account_id, call_id = ring(world, PLUMBER_DID)
    op, _ = page_login(world, world.operator)
    url = f"/console/appels/{account_id}/{call_id}"
    page = op.get(url).text
    assert "Afficher l’historique" in page and "Fuite" not in page
    assert history_reads(world) == []  # the screen pop alone reads no history
    assert op.get(f"{url}?historique=curiosite").status_code == 404  # no free-text reason
    assert history_reads(world) == []
    page = op.get(f"{url}?historique=call_back").text
    section = page.split('id="historique"')[1].split("</section>")[0]
    assert "Demande d&#39;intervention" in section and "à traiter" in section
    assert "Fuite" not in section  # metadata only: when, purpose, state
    op.cookies.set("permanence_lang", "en")
    english = op.get(f"{url}?historique=follow_up").text
    section = english.split('id="historique"')[1].split("</section>")[0]
    assert "Call-out request" in section and "to treat" in section
    assert "follow-up of a request" in section
    op.cookies.set("permanence_lang", "fr")
    first, _second = history_reads(world)
    entry = first
    assert entry.subject_id == caller
    assert '"reason":"call_back"' in entry.body.replace(" ", "")
    assert NAME not in entry.body and "Fuite" not in entry.body


def expire(world: World) -> None:
    with world.rt.db.session(AccessContext.system("test")) as s:
        s.execute(
            update(WebSession)
            .where(WebSession.user_id == world.operator.id)
            .values(last_seen_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
        )


def test_a_session_ended_mid_message_signs_in_again_and_saves_it(world: World) -> None:
    account_id, call_id = ring(world, MEDICAL_DID)
    op, csrf = page_login(world, world.operator)
    url = f"/console/appels/{account_id}/{call_id}"
    op.get(f"{url}?motif=message")
    expire(world)
    typed = {"motif": "message", "f_last_name": NAME, "f_phone": PHONE, "f_note": NOTE}
    r = op.post(f"{url}/enregistrer", data={**typed, "csrf_token": csrf})
    assert r.status_code == 401
    assert "Reconnectez-vous" in r.text
    for name, value in typed.items():
        assert f'name="{name}" value="{value}"' in r.text  # carried, to this browser only
    assert rows(world, Message, account_id) == []  # nothing saved yet
    resume = f"/console/reprise/{account_id}/{call_id}"
    again_csrf = csrf_of(r.text)
    # A wrong password: refused, and the typed text is still carried.
    wrong = op.post(
        resume,
        data={
            **typed,
            "csrf_token": again_csrf,
            "email": world.operator.email,
            "password": "pas le bon",
            "totp": "",
        },
    )
    assert wrong.status_code == 401 and f'value="{NOTE}"' in wrong.text
    assert rows(world, Message, account_id) == []
    # Without the page's token (another site posting): refused.
    forged = TestClient(world.app, follow_redirects=False)  # type: ignore[arg-type]
    r = forged.post(
        resume,
        data={
            **typed,
            "csrf_token": "x",
            "email": world.operator.email,
            "password": PASSWORD,
            "totp": "",
        },
    )
    assert r.status_code == 403 and rows(world, Message, account_id) == []
    # The right credentials: signed in, and the message saved at once.
    again_csrf = csrf_of(wrong.text)
    r = op.post(
        resume,
        data={
            **typed,
            "csrf_token": again_csrf,
            "email": world.operator.email,
            "password": PASSWORD,
            "totp": world.operator.code() or "",
        },
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"{url}?enregistre=message&reconnecte=1"
    assert len(rows(world, Message, account_id)) == 1
    page = op.get(r.headers["location"])
    assert page.status_code == 200 and "Message enregistré." in page.text
    assert "ce que vous aviez saisi a été conservé" in page.text


def test_a_client_user_cannot_save_through_the_sign_in_again_page(world: World) -> None:
    account_id, call_id = ring(world, MEDICAL_DID)
    c = TestClient(world.app, follow_redirects=False)  # type: ignore[arg-type]
    typed = {"motif": "message", "f_last_name": NAME, "f_phone": PHONE, "f_note": NOTE}
    page = c.post(f"/console/appels/{account_id}/{call_id}/enregistrer", data=typed)
    assert page.status_code == 401
    r = c.post(
        f"/console/reprise/{account_id}/{call_id}",
        data={
            **typed,
            "csrf_token": csrf_of(page.text),
            "email": world.client_medical.email,
            "password": PASSWORD,
        },
    )
    assert r.status_code == 401 and rows(world, Message, account_id) == []


def test_the_slot_is_typed_when_the_agenda_has_no_free_slot(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from permanence.web.pages import console

    monkeypatch.setattr(console.agenda, "free_slots", lambda s, day: [])
    known_caller(world, world.plumber.id)
    account_id, call_id = ring(world, PLUMBER_DID)
    op, csrf = page_login(world, world.operator)
    url = f"/console/appels/{account_id}/{call_id}"
    page = op.get(f"{url}?motif=appointment").text
    assert 'name="creneau_libre" type="datetime-local"' in page
    assert 'name="creneau"' not in page and 'name="f_preferred_slot"' not in page
    form = {
        "motif": "appointment",
        "f_last_name": NAME,
        "f_phone": PHONE,
        "f_address": "5 rue des Lilas",
        "csrf_token": csrf,
    }
    missing = op.post(f"{url}/enregistrer", data=form)
    assert missing.status_code == 422 and "Choisissez un créneau" in missing.text
    when = (dt.datetime.now() + dt.timedelta(days=3)).replace(hour=10, minute=0, second=0)
    r = op.post(
        f"{url}/enregistrer", data={**form, "creneau_libre": when.strftime("%Y-%m-%dT%H:%M")}
    )
    assert r.status_code == 303, r.text
    [appt] = rows(world, Appointment, account_id)
    assert appt.starts_at.astimezone(console.TIMEZONE).strftime("%d %H:%M") == when.strftime(
        "%d %H:%M"
    )  # type: ignore[attr-defined]
    assert (appt.ends_at - appt.starts_at) == dt.timedelta(minutes=30)  # type: ignore[attr-defined]


def test_the_instructions_name_the_on_call_contact_in_force_and_group_the_hours() -> None:
    from pathlib import Path

    import yaml

    import permanence.demo
    from permanence.mandates.mandate import Mandate
    from permanence.web.pages import console_desk as desk
    from permanence.web.pages.render import TIMEZONE

    path = Path(permanence.demo.__file__).parent / "mandates" / "cabinet-lefevre.yaml"
    mandate = Mandate.model_validate(yaml.safe_load(path.read_text()))
    night = desk.instructions(mandate, dt.datetime(2026, 12, 7, 23, 0, tzinfo=TIMEZONE))
    assert night.on_call_now is not None and night.on_call_now.starts == "18:00"
    day = desk.instructions(mandate, dt.datetime(2026, 12, 7, 11, 0, tzinfo=TIMEZONE))
    assert day.on_call_now is None and day.on_call_declared and len(day.on_call_rota) == 1
    assert day.opening == [("mon", "fri", ("09:00-12:00", "14:00-18:00"))]
    assert day.special is None  # the mandate has no special instructions (yet)


def test_failed_sign_ins_again_count_toward_the_lock_like_the_sign_in_page(world: World) -> None:
    from permanence.staff import credentials
    from permanence.staff.model import User

    world.rt.settings.signin_lock_threshold = 3
    account_id, call_id = ring(world, MEDICAL_DID)
    c = TestClient(world.app, follow_redirects=False)  # type: ignore[arg-type]
    typed = {"motif": "message", "f_last_name": NAME, "f_phone": PHONE, "f_note": NOTE}
    page = c.post(f"/console/appels/{account_id}/{call_id}/enregistrer", data=typed)
    answers = []
    for _ in range(4):
        page = c.post(
            f"/console/reprise/{account_id}/{call_id}",
            data={
                **typed,
                "csrf_token": csrf_of(page.text),
                "email": world.operator.email,
                "password": "pas le bon",
            },
        )
        answers.append(page.status_code)
        assert f'value="{NOTE}"' in page.text  # still carried
    assert answers[-1] == 423, answers
    with world.rt.db.session(AccessContext.system("test"), readonly=True) as s:
        user = s.get(User, world.operator.id)
        assert user is not None and credentials.is_locked(s, user)
    assert rows(world, Message, account_id) == []


def test_the_on_call_contact_in_force_follows_the_rota_days_and_dates_as_routing_does() -> None:
    """The console names the contact the call routing would forward to: the rota's weekdays
    and validity dates count, not only the time of day (the plumber's demo rota)."""
    from pathlib import Path

    import yaml

    import permanence.demo
    from permanence.mandates.mandate import Mandate
    from permanence.web.pages import console_desk as desk
    from permanence.web.pages.render import TIMEZONE

    path = Path(permanence.demo.__file__).parent / "mandates" / "plomberie-durand.yaml"
    mandate = Mandate.model_validate(yaml.safe_load(path.read_text()))

    def in_force(*when: int) -> str | None:
        now = desk.instructions(mandate, dt.datetime(*when, tzinfo=TIMEZONE)).on_call_now
        return now.name if now else None

    assert in_force(2026, 12, 12, 10, 0) == "Sophie Durand"  # a Saturday: the weekend line
    assert in_force(2026, 12, 7, 10, 0) is None  # a Monday in office hours: nobody on call
    assert in_force(2026, 12, 28, 10, 0) == "Marc Durand"  # a Christmas-week weekday
    assert in_force(2026, 12, 8, 19, 0) == "Marc Durand"  # a Tuesday evening
    assert in_force(2026, 12, 13, 19, 0) == "Sophie Durand"  # a Sunday evening
    shown = desk.instructions(mandate, dt.datetime(2026, 12, 7, 10, 0, tzinfo=TIMEZONE), "fr")
    assert shown.hours is not None
    assert any("lundi" in line and "8 h" in line for line in shown.hours["week"]), shown.hours
