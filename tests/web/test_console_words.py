"""Errors the operator can act on, in their language (issue 17): what the screening found is
named in words ("un numéro de sécurité sociale a été détecté dans le champ « … »"), never
echoed; a field the purpose does not declare is refused with a visible message; a call
entered by hand for a number no account owns says so."""

from __future__ import annotations

import re
import uuid

from fastapi.testclient import TestClient

from permanence.messages import service as messages
from tests.factories import ctx_for
from tests.web.conftest import World
from tests.web.pages_helpers import page_login
from tests.web.test_pages import INTERVENTION, ring

NIR = "1 85 05 78 006 084 - 91"  # a valid key (97 - 1850578006084 mod 97), its key set apart
BORN = "née le 12/03/1985"  # the purpose declares no date of birth
NOTE = f"Voisine à rappeler, sécu {NIR}, {BORN}"


def _alert(html: str) -> str:
    found = re.search(
        r'<div class="alert error" role="alert"[^>]*id="problemes">(.*?)</div>', html, re.S
    )
    assert found is not None, "no error box on the page"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip()


def _taken(world: World, lang: str | None = None) -> tuple[TestClient, str, str, uuid.UUID]:
    account_id, call_id = ring(world)
    op, csrf = page_login(world, world.operator)
    if lang:
        op.cookies.set("permanence_lang", lang)
    op.post(f"/console/appels/{account_id}/{call_id}/prendre", data={"csrf_token": csrf})
    return op, csrf, f"/console/appels/{account_id}/{call_id}", account_id


def test_undeclared_data_in_a_note_is_named_in_french_and_never_echoed(world: World) -> None:
    op, csrf, url, account_id = _taken(world)
    r = op.post(
        f"{url}/enregistrer", data={**INTERVENTION, "f_description": NOTE, "csrf_token": csrf}
    )
    assert r.status_code == 422
    alert = _alert(r.text)
    assert (
        "Un numéro de sécurité sociale a été détecté dans le champ « Description du problème »."
        in alert
    )
    assert "Retirez cette donnée : elle ne peut pas être conservée." in alert
    assert (
        "Une date de naissance a été détectée dans le champ « Description du problème »." in alert
    )
    # Nothing of what was found in the message itself, no type code, no offsets.
    for leak in ("085", "006", "1985", "NIR", "DATE_OF_BIRTH", " at "):
        assert leak not in alert, leak
    # The NIR is refused outright: no confirmation offered; nothing saved.
    assert 'name="confirmer"' not in r.text
    with world.rt.db.session(ctx_for(account_id), readonly=True) as s:
        assert messages.list_messages(s) == []


def test_the_same_finding_in_the_english_interface(world: World) -> None:
    op, csrf, url, _ = _taken(world, "en")
    note = f"Neighbour to call back, {BORN}"
    r = op.post(
        f"{url}/enregistrer", data={**INTERVENTION, "f_description": note, "csrf_token": csrf}
    )
    assert r.status_code == 422
    alert = _alert(r.text)
    assert "A date of birth was found in the field “Description of the problem”." in alert
    assert "The purpose does not declare it: remove it, or tick the confirmation below" in alert
    assert "détecté" not in alert and "1985" not in alert
    # Only undeclared (not refused): confirming it saves the message.
    assert 'name="confirmer"' in r.text
    saved = op.post(
        f"{url}/enregistrer",
        data={**INTERVENTION, "f_description": note, "confirmer": "oui", "csrf_token": csrf},
    )
    assert saved.status_code == 303


def test_a_field_the_purpose_does_not_declare_is_refused_visibly(world: World) -> None:
    op, csrf, url, account_id = _taken(world)
    r = op.post(f"{url}/enregistrer", data={**INTERVENTION, "f_secu": "x", "csrf_token": csrf})
    assert r.status_code == 422
    assert _alert(r.text) == (
        "L’enregistrement n’a pas pu se faire : Le champ « secu » ne fait pas partie de ce motif"
        " : rien n’a été enregistré."
    )
    with world.rt.db.session(ctx_for(account_id), readonly=True) as s:
        assert messages.list_messages(s) == []


def test_a_call_entered_by_hand_for_a_number_no_account_owns_says_so(world: World) -> None:
    op, csrf = page_login(world, world.operator)
    typed = {"dialled": "01 99 00 99 99", "caller_number": "06 12 34 56 78", "csrf_token": csrf}
    r = op.post("/console/appels", data=typed)
    assert r.status_code == 404
    assert _alert(r.text).startswith("Aucun compte client n’a le numéro composé")
    assert 'value="01 99 00 99 99"' in r.text  # the numbers typed are kept to correct them
    assert "Console" in r.text and 'id="file-attente"' in r.text  # the console, not an error page
    bad = op.post("/console/appels", data={**typed, "dialled": "pas un numéro"})
    assert bad.status_code == 422
    assert _alert(bad.text).startswith("Un des numéros saisis n’est pas un numéro de téléphone")
    op.cookies.set("permanence_lang", "en")
    r = op.post("/console/appels", data=typed)
    assert r.status_code == 404 and _alert(r.text).startswith("No client account has the number")


def test_a_second_phone_number_in_a_note_is_caught_the_callers_own_is_not(world: World) -> None:
    op, csrf, url, account_id = _taken(world)
    # The form's phone is 06 12 34 56 78; the note repeats it as +33, and adds another.
    note = "Joignable au +33 6 12 34 56 78, sinon sa fille au 06.98.76.54.32"
    r = op.post(
        f"{url}/enregistrer", data={**INTERVENTION, "f_description": note, "csrf_token": csrf}
    )
    assert r.status_code == 422
    alert = _alert(r.text)
    assert alert.count("détecté") == 1, alert
    assert (
        "Un numéro de téléphone autre que celui de l’appelant a été détecté dans le champ "
        "« Description du problème »."
    ) in alert
    assert "98" not in alert and "76" not in alert
    assert 'name="confirmer"' in r.text  # someone else's number: kept only if confirmed
    with world.rt.db.session(ctx_for(account_id), readonly=True) as s:
        assert messages.list_messages(s) == []
    only_own = {**INTERVENTION, "f_description": "Joignable au +33 6 12 34 56 78 après 18 h"}
    assert op.post(f"{url}/enregistrer", data={**only_own, "csrf_token": csrf}).status_code == 303
