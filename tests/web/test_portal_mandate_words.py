"""The client's mandate page says its legal bases and durations in words, in French and in
English, never as the mandate's codes."""

from __future__ import annotations

import html
import re

from tests.web.conftest import World
from tests.web.pages_helpers import page_login

CODES = re.compile(r"\b(contract|legitimate_interest|art9_2_[a-j]|call_log|P\d+[YMWD]|PT\d+)\b")


def _text(page: str) -> str:
    main = page[page.index("<main") : page.index("</main>")]
    return html.unescape(re.sub(r"<[^>]+>", " ", main))


def test_the_mandate_page_in_plain_french_then_english(world: World) -> None:
    client, _csrf = page_login(world, world.client_medical)

    fr = _text(client.get("/portail/mandat").text)

    assert "exécution d'un contrat — art. 6.1.b" in fr
    assert "soins — art. 9.2.h" in fr
    assert "messages : 3 mois" in fr and "journal d'appels : 1 an" in fr
    assert not CODES.search(fr), CODES.search(fr)

    client.cookies.set("permanence_lang", "en")
    en = _text(client.get("/portail/mandat").text)

    assert "performance of a contract — Art. 6(1)(b)" in en
    assert "care — Art. 9(2)(h)" in en
    assert "messages: 3 months" in en and "call log: 1 year" in en
    words = en.replace("performance of a contract", "")
    assert not CODES.search(words), CODES.search(words)
    assert "exécution" not in en and "mois" not in en
