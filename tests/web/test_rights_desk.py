"""The DPO's rights desk in the pages: intake (with the caller searched by blind index),
verification by code or another way, preview and execution (erasure confirmed), extension
and refusal with their letters, the register with its filters and its CSV export. Every
refusal of bad input is a 4xx in French with what was typed, and writes nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from permanence.context import AccessContext
from permanence.rights import clock, desk
from permanence.rights.model import RightsRequest
from permanence.subjects.model import Caller
from tests.conftest import SmtpSink
from tests.factories import caller_with_records
from tests.web.conftest import World
from tests.web.pages_helpers import page_login

FIRST, LAST = "Anatole", "Brisebarre"
PHONE, EMAIL = "06 72 11 22 33", "anatole.brisebarre@exemple.fr"


def _caller(world: World) -> uuid.UUID:
    return caller_with_records(
        world.rt, world.plumber.id, first=FIRST, last=LAST, phone=PHONE, email=EMAIL
    ).caller_id


def _count(world: World, account_id: uuid.UUID) -> int:
    with world.rt.db.session(AccessContext.system("test", account_id), readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(RightsRequest)) or 0)


def _get(world: World, request_id: str) -> RightsRequest:
    with world.rt.db.session(AccessContext.system("test", world.plumber.id), readonly=True) as s:
        req = s.get(RightsRequest, uuid.UUID(request_id))
        assert req is not None
        return req


def _intake(world: World, dpo: TestClient, csrf: str, kind: str = "erasure", **extra: str) -> str:
    data = {
        "csrf_token": csrf,
        "action": "enregistrer",
        "compte": str(world.plumber.id),
        "droit": kind,
        "recu_par": "phone",
        "recu_le": "2026-11-20T10:30",
        "telephone": PHONE,
        **extra,
    }
    r = dpo.post("/dpo/droits/nouvelle", data=data)
    assert r.status_code == 303, r.text
    found = re.search(r"/dpo/droits/[0-9a-f-]+/([0-9a-f-]+)\?fait=recue", r.headers["location"])
    assert found, r.headers["location"]
    return found.group(1)


def _base(world: World, request_id: str) -> str:
    return f"/dpo/droits/{world.plumber.id}/{request_id}"


def test_intake_searches_the_caller_and_starts_the_clock_at_receipt(world: World) -> None:
    caller_id = _caller(world)
    dpo, csrf = page_login(world, world.dpo)
    assert dpo.get("/dpo/droits/nouvelle").status_code == 200
    found = dpo.post(
        "/dpo/droits/nouvelle",
        data={
            "csrf_token": csrf,
            "action": "chercher",
            "compte": str(world.plumber.id),
            "telephone": "+33672112233",  # another form of the same number
        },
    )
    assert found.status_code == 200
    assert f'value="{caller_id}"' in found.text and LAST in found.text
    assert _count(world, world.plumber.id) == 0  # a search writes no request
    request_id = _intake(world, dpo, csrf, appelant=str(caller_id))
    req = _get(world, request_id)
    received = dt.datetime(2026, 11, 20, 10, 30, tzinfo=clock.PARIS)
    assert req.received_at == received.astimezone(dt.UTC)
    assert req.due_at == clock.due_at(received)  # the clock started at receipt, not now
    assert req.subject_id == caller_id and req.received_via == "phone"
    page = dpo.get(_base(world, request_id))
    assert page.status_code == 200
    assert "Demande reçue" in page.text and "par téléphone" in page.text
    assert desk.reference(req) in page.text
    assert PHONE not in page.text and EMAIL not in page.text  # not shown unless asked


def test_intake_refusals_keep_what_was_typed_and_write_nothing(world: World) -> None:
    dpo, csrf = page_login(world, world.dpo)
    base = {
        "csrf_token": csrf,
        "action": "enregistrer",
        "compte": str(world.plumber.id),
        "recu_par": "phone",
        "recu_le": "2026-11-20T10:30",
        "nom": "Brisebarre",
    }
    r = dpo.post("/dpo/droits/nouvelle", data=base)
    assert r.status_code == 422
    assert "Droit : choisissez le droit exercé." in r.text
    assert 'value="Brisebarre"' in r.text
    future = (dt.datetime.now(clock.PARIS) + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    r = dpo.post("/dpo/droits/nouvelle", data={**base, "droit": "access", "recu_le": future})
    assert r.status_code == 422
    assert "ne peut pas être reçue dans le futur" in r.text
    r = dpo.post(
        "/dpo/droits/nouvelle", data={**base, "droit": "objection", "nom": "", "telephone": ""}
    )
    assert r.status_code == 422
    assert "Indiquez le numéro de téléphone, l&#39;adresse e-mail ou le nom" in r.text
    r = dpo.post("/dpo/droits/nouvelle", data={**base, "droit": "objection"})
    assert r.status_code == 422 and "Opposition : indiquez à quoi elle porte" in r.text
    assert _count(world, world.plumber.id) == 0


def test_verification_by_a_code_sent_to_the_email_on_file(world: World, smtp: SmtpSink) -> None:
    _caller(world)
    dpo, csrf = page_login(world, world.dpo)
    # The requester gave only a phone number: the code still goes to the e-mail on file.
    request_id = _intake(world, dpo, csrf, kind="access")
    base = _base(world, request_id)
    r = dpo.post(base + "/code", data={"csrf_token": csrf, "methode": "email_code"})
    assert r.status_code == 303
    assert [to for _f, to, _b in smtp.messages] == [[EMAIL]]
    code = re.search(r"\b(\d{6})\b", smtp.bodies()[0])
    assert code
    wrong = dpo.post(base + "/verifier", data={"csrf_token": csrf, "code": "000000"})
    if code.group(1) == "000000":  # pragma: no cover - one chance in a million
        return
    assert wrong.status_code == 422 and "Ce code n&#39;est pas celui" in wrong.text
    assert _get(world, request_id).verification_attempts == 1  # counted, committed
    ok = dpo.post(base + "/verifier", data={"csrf_token": csrf, "code": code.group(1)})
    assert ok.status_code == 303
    req = _get(world, request_id)
    assert req.verified_at is not None and req.verification_method == "email_code"
    assert "Identité vérifiée" in dpo.get(base).text


def test_verification_another_way_needs_its_reason_and_a_confirmation(world: World) -> None:
    _caller(world)
    dpo, csrf = page_login(world, world.dpo)
    request_id = _intake(world, dpo, csrf)
    base = _base(world, request_id)
    shown = dpo.post(base + "/numero", data={"csrf_token": csrf})
    assert shown.status_code == 200 and "+33672112233" in shown.text  # the number on file
    r = dpo.post(base + "/verification", data={"csrf_token": csrf, "confirme": "oui"})
    assert r.status_code == 422 and "Indiquez comment l&#39;identité a été vérifiée." in r.text
    r = dpo.post(base + "/verification", data={"csrf_token": csrf, "motif": "callback"})
    assert r.status_code == 422 and "Confirmez que la vérification a réussi." in r.text
    assert _get(world, request_id).verification_method is None  # nothing half-written
    r = dpo.post(
        base + "/verification", data={"csrf_token": csrf, "motif": "id_seen", "confirme": "oui"}
    )
    assert r.status_code == 303
    req = _get(world, request_id)
    assert req.verified_at is not None and req.verification_method == "id_seen"
    history = dpo.get(base).text.split('id="historique"')[1]
    assert "Identité vérifiée" in history and "pièce d'identité vue" in history
    assert "method" not in history  # said in words, not codes


def test_preview_then_erasure_only_once_confirmed(world: World) -> None:
    caller_id = _caller(world)
    dpo, csrf = page_login(world, world.dpo)
    request_id = _intake(world, dpo, csrf)
    base = _base(world, request_id)
    early = dpo.post(base + "/apercu", data={"csrf_token": csrf})
    assert early.status_code == 422 and "Vérifiez l&#39;identité du demandeur" in early.text
    unverified = dpo.post(base + "/executer", data={"csrf_token": csrf, "confirme": "oui"})
    assert unverified.status_code == 409 and "Vérifiez l&#39;identité" in unverified.text
    unconfirmed = dpo.post(base + "/executer", data={"csrf_token": csrf})
    assert unconfirmed.status_code == 422 and "Confirmez l&#39;effacement" in unconfirmed.text
    dpo.post(
        base + "/verification", data={"csrf_token": csrf, "motif": "callback", "confirme": "oui"}
    )
    preview = dpo.post(base + "/apercu", data={"csrf_token": csrf})
    assert preview.status_code == 200
    assert "Données trouvées" in preview.text and "appels : 1" in preview.text
    assert "Destinataires à informer (art. 19)" in preview.text
    refused = dpo.post(base + "/executer", data={"csrf_token": csrf})
    assert refused.status_code == 422 and "Confirmez l&#39;effacement" in refused.text
    assert "appels : 1" in refused.text  # the preview is shown again with the question
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        assert s.get(Caller, caller_id) is not None
    done = dpo.post(base + "/executer", data={"csrf_token": csrf, "confirme": "oui"})
    assert done.status_code == 303 and "fait=executee" in done.headers["location"]
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        assert s.get(Caller, caller_id) is None
    assert _get(world, request_id).state == "completed"
    page = dpo.get(base)
    assert "Données effacées, clé détruite" in page.text
    closed = dpo.get("/dpo/droits?etat=closed")
    assert desk.reference(_get(world, request_id)) in closed.text


def test_extension_once_with_its_letter_and_refusal_naming_the_cnil(world: World) -> None:
    _caller(world)
    dpo, csrf = page_login(world, world.dpo)
    today = dt.datetime.now(clock.PARIS).strftime("%Y-%m-%dT%H:%M")
    request_id = _intake(world, dpo, csrf, kind="access", recu_le=today)
    base = _base(world, request_id)
    r = dpo.post(base + "/prolonger", data={"csrf_token": csrf, "motif": ""})
    assert r.status_code == 422 and "Motif : choisissez pourquoi" in r.text
    r = dpo.post(base + "/prolonger", data={"csrf_token": csrf, "motif": "complexity"})
    # Not verified yet: nothing may be sent to the contact on file, the letter is to be posted.
    assert r.status_code == 303 and "canal=letter" in r.headers["location"]
    page = dpo.get(r.headers["location"])
    assert "la complexité de votre demande" in page.text  # the letter, in French
    assert "imprimez la lettre et envoyez-la par courrier" in page.text
    assert "Plus possible : déjà prolongé" in page.text
    r = dpo.post(base + "/prolonger", data={"csrf_token": csrf, "motif": "complexity"})
    assert r.status_code == 409 and "a déjà été prolongé une fois" in r.text
    typed = "Cinquième demande identique ce mois-ci"
    r = dpo.post(
        base + "/refuser",
        data={
            "csrf_token": csrf,
            "motif": "manifestly_excessive",
            "explication": typed,
            "justification": "trop court",
            "cnil": "oui",
        },
    )
    assert r.status_code == 422
    assert "un refus pour demande infondée ou excessive doit être justifié" in r.text
    assert "droit de recours en justice" in r.text
    assert typed in r.text  # what was typed is shown again
    assert _get(world, request_id).state != "refused"
    r = dpo.post(
        base + "/refuser",
        data={
            "csrf_token": csrf,
            "motif": "manifestly_excessive",
            "explication": typed,
            "justification": "Quatre demandes d'accès identiques en trois semaines.",
            "cnil": "oui",
            "recours": "oui",
        },
    )
    assert r.status_code == 303
    page = dpo.get(base)
    assert "CNIL" in page.text and "https://www.cnil.fr/fr/plaintes" in page.text
    assert typed in page.text
    assert _get(world, request_id).refusal_reason == "manifestly_excessive"


def test_register_filters_and_csv_without_personal_data(world: World) -> None:
    _caller(world)
    dpo, csrf = page_login(world, world.dpo)
    late = _intake(world, dpo, csrf, kind="access")
    other = _intake(world, dpo, csrf, kind="restriction", nom=f"{FIRST} {LAST}")
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        s.execute(
            update(RightsRequest)
            .where(RightsRequest.id == uuid.UUID(late))
            .values(due_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
        )
        s.execute(
            update(RightsRequest)
            .where(RightsRequest.id == uuid.UUID(other))
            .values(due_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=20))
        )
    ref_late, ref_other = desk.reference(_get(world, late)), desk.reference(_get(world, other))
    overdue = dpo.get("/dpo/droits?retard=1")
    assert ref_late in overdue.text and ref_other not in overdue.text
    by_kind = dpo.get("/dpo/droits?droit=restriction")
    assert ref_other in by_kind.text and ref_late not in by_kind.text
    other_account = dpo.get(f"/dpo/droits?compte={world.medical.id}")
    assert ref_late not in other_account.text
    days = dpo.get("/dpo/droits?du=2026-11-21&au=2026-11-30")
    assert ref_late not in days.text  # received on 20 November
    bad = dpo.get("/dpo/droits?etat=perdue")
    assert bad.status_code == 422 and "État : ce n&#39;est pas un état de demande." in bad.text
    export = dpo.get("/dpo/droits/registre.csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert {r["reference"] for r in rows} == {ref_late, ref_other}
    assert {r["overdue"] for r in rows if r["reference"] == ref_late} == {"yes"}
    assert all(r["account"] == "plomberie-durand" and r["subject_id"] for r in rows)
    for needle in (FIRST, LAST, EMAIL, PHONE, "0672112233", "+33672112233"):
        assert needle not in export.text
    filtered = dpo.get("/dpo/droits/registre.csv?droit=access")
    assert [r["reference"] for r in csv.DictReader(io.StringIO(filtered.text))] == [ref_late]


def test_csv_cells_cannot_start_a_formula() -> None:
    assert desk.safe_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert desk.safe_cell("+33") == "'+33" and desk.safe_cell("@x") == "'@x"
    assert desk.safe_cell("-1") == "'-1" and desk.safe_cell("access") == "access"
    lines = desk.csv_rows([], dt.datetime.now(dt.UTC))
    assert list(csv.reader(io.StringIO(desk.to_csv(lines)))) == [list(desk.CSV_COLUMNS)]


def test_only_the_dpo_works_requests_and_forms_need_the_token(world: World) -> None:
    _caller(world)
    dpo, csrf = page_login(world, world.dpo)
    request_id = _intake(world, dpo, csrf)
    base = _base(world, request_id)
    no_token = dpo.post(base + "/prolonger", data={"motif": "complexity"})
    assert no_token.status_code == 403
    operator, op_csrf = page_login(world, world.operator)
    assert operator.get("/dpo/droits").status_code == 403
    assert operator.post(base + "/apercu", data={"csrf_token": op_csrf}).status_code == 403
    admin, admin_csrf = page_login(world, world.admin)
    assert admin.get("/dpo/droits").status_code == 200  # reads the register
    assert admin.post(base + "/apercu", data={"csrf_token": admin_csrf}).status_code == 403
    assert _get(world, request_id).extended_at is None


def test_the_dpo_extends_through_the_api_too_an_operator_does_not(world: World) -> None:
    """The same decision from the JSON API (ADR 0011): the DPO may, an operator may not."""
    _caller(world)
    dpo, csrf = page_login(world, world.dpo)
    today = dt.datetime.now(clock.PARIS).strftime("%Y-%m-%dT%H:%M")
    request_id = _intake(world, dpo, csrf, kind="access", recu_le=today)
    url = f"/api/v1/accounts/{world.plumber.id}/rights/requests/{request_id}/extend"
    operator = world.login(world.operator)
    assert operator.post(url, json={"reason": "complexity"}).status_code == 403
    r = world.login(world.dpo).post(url, json={"reason": "complexity"})
    assert r.status_code == 200, r.text
    assert "complexité" in r.json()["letter_fr"]


def test_an_ambiguous_request_is_matched_again_with_more_information(world: World) -> None:
    from tests.factories import make_caller

    first = make_caller(world.rt, world.plumber.id, first="Jean", last="Roux", phone=PHONE)
    make_caller(world.rt, world.plumber.id, first="Jean", last="Roux", phone="0672999999")
    dpo, csrf = page_login(world, world.dpo)
    request_id = _intake(world, dpo, csrf, kind="access", telephone="", nom="Jean Roux")
    assert _get(world, request_id).state == "waiting_info"
    base = _base(world, request_id)
    assert "plusieurs appelants correspondent" in dpo.get(base).text
    empty = dpo.post(base + "/informations", data={"csrf_token": csrf})
    assert empty.status_code == 422 and "Indiquez le numéro de téléphone" in empty.text
    r = dpo.post(base + "/informations", data={"csrf_token": csrf, "telephone": PHONE})
    assert r.status_code == 303
    req = _get(world, request_id)
    assert req.subject_id == first and req.state == "received"
    assert "Informations complétées" in dpo.get(base).text


def test_the_desk_speaks_english_when_asked(world: World) -> None:
    _caller(world)
    dpo, csrf = page_login(world, world.dpo)
    request_id = _intake(world, dpo, csrf, kind="access")
    english = {"accept-language": "en"}
    register = dpo.get("/dpo/droits", headers=english)
    assert "Register of rights requests" in register.text and "Access (Art. 15)" in register.text
    page = dpo.get(_base(world, request_id), headers=english)
    assert "Request received" in page.text and "by phone" in page.text
    refused = dpo.post(
        _base(world, request_id) + "/prolonger",
        data={"csrf_token": csrf, "motif": ""},
        headers=english,
    )
    assert refused.status_code == 422 and "reason: choose why more time is needed" in refused.text


def test_the_link_goes_to_the_channel_the_requester_proved(world: World, smtp: SmtpSink) -> None:
    """Verified by a code sent by SMS: the access package's link goes by SMS to the number on
    file, though an e-mail address is on file too."""
    from urllib.parse import parse_qs

    from tests.servers import HttpSink

    sink = HttpSink(default=201).start()
    try:
        world.rt.settings.sms_gateway_url = sink.url("/2010-04-01/Accounts/AC1/Messages.json")
        world.rt.settings.sms_from = "+33100000000"
        _caller(world)
        dpo, csrf = page_login(world, world.dpo)
        request_id = _intake(world, dpo, csrf, kind="access")
        base = _base(world, request_id)
        assert (
            dpo.post(base + "/code", data={"csrf_token": csrf, "methode": "sms_code"}).status_code
            == 303
        )
        # The acknowledgement went first (by SMS, to the number given); then the code.
        sent = {k: v[0] for k, v in parse_qs(sink.received[-1].body.decode()).items()}
        code = re.search(r"\b(\d{6})\b", sent["Body"])
        assert code and sent["To"] == "+33672112233"
        assert (
            dpo.post(
                base + "/verifier", data={"csrf_token": csrf, "code": code.group(1)}
            ).status_code
            == 303
        )
        done = dpo.post(base + "/executer", data={"csrf_token": csrf})
        assert done.status_code == 303 and "canal=sms" in done.headers["location"]
        link = {k: v[0] for k, v in parse_qs(sink.received[-1].body.decode()).items()}["Body"]
        assert "/api/v1/rights/downloads/" in link
        assert smtp.messages == []  # nothing by e-mail
    finally:
        sink.stop()
