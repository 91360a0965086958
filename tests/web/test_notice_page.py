"""The callers' notice /n/{account}/{version}: the second layer of the Art. 13 information,
generated from the mandate, public, in French and English, every version kept online."""

from __future__ import annotations

import re
from html import unescape

from fastapi.testclient import TestClient

from permanence.accounts.service import import_mandate
from permanence.context import AccessContext
from permanence.mandates.durations import IsoDuration
from permanence.mandates.layer2 import duration_words, external_layer2, layer2_url
from permanence.mandates.parsing import parse_mandate
from tests.factories import demo_mandate_text
from tests.web.conftest import World


def _text(html: str) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, spaces collapsed."""
    body = re.sub(r"<[^>]+>", " ", html.split("<main", 1)[1])
    return re.sub(r"\s+", " ", unescape(body))


# The Art. 13 items, as listed in the design brief (shared/spec/gdpr.md, section 3), each with
# what the medical demo mandate (cabinet-lefevre) must make the page say for it, in French.
ART13_ITEMS_FR = {
    "13(1)(a) controller identity": ["Cabinet du Dr Claire Lefèvre", "12 rue des Lilas"],
    "13(1)(a) controller contact": ["secretariat@cabinet-lefevre.example"],
    "13(1)(b) DPO contact (none: the rights contact)": [
        "pas désigné de délégué à la protection des données"
    ],
    "13(1)(c) purposes": ["Prise de rendez-vous", "Message pour le médecin"],
    "13(1)(c) legal basis": ["article 6(1)(b)", "article 6(1)(f)"],
    "13(1)(d) legitimate interest pursued": [
        "transmettre au médecin les demandes de ses patients hors des heures d'ouverture"
    ],
    "Art. 9 basis": ["article 9(2)(h)"],
    "categories of data": ["Nom", "Message pour le docteur"],
    "13(1)(e) recipients": ["portail sécurisé", "sous-traitant", "astreinte"],
    "13(1)(f) transfers outside the EEA": ["pas transférées hors de l'Espace économique européen"],
    "13(2)(a) retention in words": ["1 an", "3 mois"],
    "recording and the right to object": ["Les appels ne sont pas enregistrés"],
    "13(2)(b) rights": [
        "Accès",
        "Rectification",
        "Effacement",
        "Limitation",
        "Opposition",
    ],
    "13(2)(b) how to exercise them": ["secretariat@cabinet-lefevre.example"],
    "13(2)(d) complaint to the CNIL": ["CNIL", "https://www.cnil.fr/"],
    "13(2)(e) required or not, consequences": ["nécessaires", "Sans elles"],
    "13(2)(f) automated decisions": ["décision automatisée"],
}


def test_every_art13_item_is_on_the_notice_of_a_demo_mandate(world: World) -> None:
    c = TestClient(world.app)  # type: ignore[arg-type]  # no sign-in: a caller
    r = c.get("/n/cabinet-lefevre/1")
    assert r.status_code == 200
    assert '<html lang="fr">' in r.text
    text = _text(r.text)
    missing = {
        item: [w for w in words if w.lower() not in text.lower()]
        for item, words in ART13_ITEMS_FR.items()
    }
    assert {k: v for k, v in missing.items() if v} == {}
    # The rights are exercised through the caller's rights page, which exists.
    assert 'href="/droits/cabinet-lefevre"' in r.text
    assert c.get("/droits/cabinet-lefevre").status_code == 200
    # Printable: the print stylesheet drops the navigation.
    assert "@media print" in c.get("/static/app.css").text


def test_the_notice_in_english_with_recording_consent_and_portability(world: World) -> None:
    c = TestClient(world.app)  # type: ignore[arg-type]
    r = c.get("/n/plomberie-durand/1?lang=en")
    assert r.status_code == 200 and '<html lang="en">' in r.text
    text = _text(r.text)
    for words in (
        "Plomberie Durand",
        "Call-out request",  # the purpose's English label
        "GDPR Art. 6(1)(a)",  # consent
        "Withdrawal of consent",
        "Portability",
        "About 20% of calls are recorded",
        "evaluating and improving the quality of the answering service",
        "Recordings are kept for 6 months",
        "press 9 while the recording notice is read",
        "Objection",
        "messages: 6 months",  # retention in words, not P6M
        "lodge a complaint with the CNIL",
        "Address of the work",
    ):
        assert words.lower() in text.lower(), words
    assert "P6M" not in text
    # The latest notice is the same page without the version, in French by default.
    latest = c.get("/n/plomberie-durand")
    assert latest.status_code == 200 and "Demande d'intervention" in _text(latest.text)
    # An English browser gets English without asking.
    assert (
        "Call-out request"
        in c.get("/n/plomberie-durand/1", headers={"accept-language": "en-GB,en;q=0.9"}).text
    )


def test_every_version_stays_online(world: World) -> None:
    text = demo_mandate_text("plomberie-durand").replace(
        'version: "2025-02"', 'version: "2026-01"', 1
    )
    text = text.replace("label_fr: Demande d'intervention", "label_fr: Dépannage", 1)
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        import_mandate(s, text, account_id=world.plumber.id)
    c = TestClient(world.app)  # type: ignore[arg-type]
    old, new, latest = (
        c.get("/n/plomberie-durand/1"),
        c.get("/n/plomberie-durand/2"),
        c.get("/n/plomberie-durand"),
    )
    assert "Demande d'intervention" in _text(old.text) and "Dépannage" not in old.text
    assert "1:2025-02" in old.text and 'href="/n/plomberie-durand"' in old.text  # points on
    assert "Dépannage" in new.text and "2:2026-01" in new.text
    assert "Dépannage" in latest.text and "2:2026-01" in latest.text


def test_unknown_account_version_or_language_is_a_404_or_400_not_a_500(world: World) -> None:
    c = TestClient(world.app)  # type: ignore[arg-type]
    assert c.get("/n/nobody-here/1").status_code == 404
    assert c.get("/n/plomberie-durand/7").status_code == 404
    assert c.get("/n/plomberie-durand/0").status_code == 404
    assert c.get("/n/Plomberie/1").status_code == 404
    assert c.get("/n/plomberie-durand/1?lang=de").status_code in (400, 404, 422)


def test_the_address_is_derived_unless_the_mandate_names_another() -> None:
    m = parse_mandate(demo_mandate_text("plomberie-durand"))
    assert m.notice.layer2_url is None
    base = "https://permanence.example/"
    assert layer2_url(m, base) == "https://permanence.example/n/plomberie-durand/1"
    assert not external_layer2(m, base)
    elsewhere = parse_mandate(
        demo_mandate_text("plomberie-durand").replace(
            'version: "2025-02"',
            'version: "2025-02"\n  layer2_url: https://plomberie-durand.example/rgpd',
            1,
        )
    )
    assert layer2_url(elsewhere, base) == "https://plomberie-durand.example/rgpd"
    assert external_layer2(elsewhere, base)


def test_durations_in_words() -> None:
    assert duration_words(IsoDuration.parse("P1Y"), "fr") == "1 an"
    assert duration_words(IsoDuration.parse("P1Y2M"), "fr") == "1 an et 2 mois"
    assert duration_words(IsoDuration.parse("P2W3D"), "en") == "2 weeks and 3 days"
    assert duration_words(IsoDuration.parse("P1M2DT4H"), "en") == "1 month, 2 days and 4 hours"


def test_the_screen_pop_without_a_gateway_says_to_read_the_address_and_shows_the_language(
    world: World,
) -> None:
    from permanence.calls.model import Call
    from tests.web.pages_helpers import page_login
    from tests.web.test_pages import ring

    world.rt.settings.sms_gateway_url = None
    account_id, call_id = ring(world)
    op, csrf = page_login(world, world.operator)
    op.post(f"/console/appels/{account_id}/{call_id}/prendre", data={"csrf_token": csrf})
    pop = _text(op.get(f"/console/appels/{account_id}/{call_id}").text)
    assert "L'envoi par SMS n'est pas configuré : lisez l'adresse à l'appelant." in pop
    assert "/n/plomberie-durand/1" in pop and "Envoyer la notice complète" not in pop
    assert "Langue de l'appel : français" in pop
    # Posting anyway is refused with a 409 saying why; nothing is recorded on the call.
    r = op.post(
        f"/console/appels/{account_id}/{call_id}/notice-sms",
        data={"csrf_token": csrf},
    )
    assert r.status_code == 409
    # A caller who chose English: the operator sees it and the English first layer.
    with world.rt.db.session(AccessContext.system("test", account_id)) as s:
        call = s.get(Call, call_id)
        assert call is not None and call.notice_sms_at is None
        call.language = "en"
    pop = _text(op.get(f"/console/appels/{account_id}/{call_id}").text)
    assert "Langue de l'appel : anglais (choisi par l'appelant)" in pop
    assert "Plomberie Durand, good morning" in pop
