"""Each page in one language only (issue 17): rendered in English it has no French left, in
French no English — except what is marked with another ``lang`` (the language switch, the
checks' own English lines), code and data (names, the mandate's words). Checked with a small
list of words that belong to one language only; and every wording the pages translate from
code (compliance check titles, Art. 28(3) clauses) has its French."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient

from permanence.compliance.checks import registered
from permanence.contracts.service import CLAUSES
from permanence.web.pages.render import LOCALE_DIR
from tests.web.conftest import World
from tests.web.every_page import NOT_PAGES, every_page, page_routes
from tests.web.pages_helpers import csrf_of, page_login


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words one language has and the other has not (nor in the demo's names and addresses).
FRENCH = _words(
    "les des du une est pour avec dans sur aucun aucune appels appel compte comptes demande "
    "demandes été être où réponse afficher depuis statistiques tableau enregistrer "
    "enregistrés reçus reçue décrochés abandonnés taux moyenne opérateur opérateurs connectés "
    "voir journal droits conformité nouveau nouvelle jours heure heures semaine "
    "échéance état origine"
)
ENGLISH = _words(
    "the and with of calls call account accounts request requests this your none show since "
    "waiting statistics answered abandoned rate average operators signed see rights "
    "compliance state received new days hour hours week save saved"
)
WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*", re.UNICODE)


class _Text(HTMLParser):
    """The words a reader of ``lang`` sees: text and alt/title/aria-label/placeholder, less
    anything inside an element marked with another language, <code>, <kbd>, <script>, and a
    <textarea>'s value (what a person wrote or will edit: a mandate's YAML, a DPIA's text)."""

    SKIP = frozenset({"code", "kbd", "script", "style", "pre", "samp", "textarea"})
    VOID = frozenset({"br", "img", "input", "meta", "link", "hr", "source", "wbr", "area"})

    def __init__(self, lang: str) -> None:
        super().__init__()
        self.lang = lang
        self.stack: list[tuple[str, bool]] = []
        self.words: list[str] = []

    def _skipping(self) -> bool:
        return any(skip for _, skip in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        other = values.get("lang") not in (None, self.lang)
        if not self._skipping() and not other:
            for name in ("alt", "title", "aria-label", "placeholder"):
                if values.get(name):
                    self.words.extend(WORD.findall(str(values[name])))
        if tag not in self.VOID:
            self.stack.append((tag, other or tag in self.SKIP))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        if not self._skipping():
            self.words.extend(WORD.findall(data))


def _foreign(html: str, lang: str, data: set[str]) -> set[str]:
    match = re.search(r'<html lang="(\w+)"', html)
    assert match is not None and match.group(1) == lang, "the page does not say its language"
    parser = _Text(lang)
    parser.feed(html)
    words = {w.lower() for w in parser.words} - data
    return words & (ENGLISH if lang == "fr" else FRENCH)


def test_every_page_route_is_walked(world: World) -> None:
    """Each GET route of the app is a page of the walk (here and in the browser's axe walk)
    or a declared non-page (a file, a redirect, a stream): a new page cannot go unchecked."""
    pages = every_page(world)
    walked = [p.route for p in pages]
    assert len(walked) == len(set(walked)), "a route is walked twice"
    routes = page_routes(world.app)
    assert not set(NOT_PAGES) & set(walked), "a route is both walked and excluded"
    unchecked = routes - set(walked) - set(NOT_PAGES)
    assert not unchecked, f"add these pages to tests/web/every_page.py: {sorted(unchecked)}"
    gone = (set(walked) | set(NOT_PAGES)) - routes
    assert not gone, f"no such route any more: {sorted(gone)}"


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_each_page_speaks_one_language(world: World, lang: str) -> None:
    clients: dict[str, TestClient] = {}
    problems: list[str] = []
    for page in every_page(world):
        key = page.who.email if page.who else ""
        if key not in clients:
            client = page_login(world, page.who)[0] if page.who else world.client()
            client.cookies.set("permanence_lang", lang)
            clients[key] = client
        client = clients[key]
        r = client.get(page.path)
        if r.status_code != page.status:
            problems.append(f"{page.path} ({lang}): {r.status_code}, not {page.status}")
            continue
        html = f'<html lang="{lang}">{r.text}</html>' if page.fragment else r.text
        if foreign := _foreign(html, lang, set(page.data)):
            problems.append(f"{page.path} ({lang}): {sorted(foreign)}")
        if page.path == "/dpo/conformite":  # and the checks run, with their results
            ran = client.post(page.path, data={"csrf_token": csrf_of(r.text)}).text
            # Every check's summary of this world is worded in the page's language.
            english = re.findall(r'<p lang="en">([^<]*)</p>', ran)
            assert lang == "en" or not english, english
            if foreign := _foreign(ran, lang, set(page.data)):
                problems.append(f"{page.path} after a run ({lang}): {sorted(foreign)}")
    assert not problems, "\n".join(problems)


def test_the_word_check_would_see_a_word_of_the_other_language() -> None:
    page = '<html lang="en"><p>Calls waiting</p><p lang="fr">Appels en attente</p></html>'
    assert _foreign(page, "en", set()) == set()
    assert _foreign(page.replace("Calls waiting", "Appels en attente"), "en", set()) == {"appels"}
    french = '<html lang="fr"><h1>Tableau</h1><img alt="Calls per day"></html>'
    assert _foreign(french, "fr", set()) == {"calls"}


def test_wordings_translated_from_code_have_their_french() -> None:
    with (LOCALE_DIR / "fr" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        french = {m.id: m.string for m in read_po(f) if m.id and m.string}
    wordings = [c.title for c in registered()] + list(CLAUSES.values())
    missing = [w for w in wordings if w not in french]
    assert not missing, f"add to the French catalogue: {missing}"


def test_a_checks_summary_is_worded_in_french_with_its_counts() -> None:
    from permanence.web.pages.render import counted

    assert counted("3 of 5 staff member(s) may not handle data", "fr").text == (
        "3 membre(s) du personnel sur 5 ne peuvent pas traiter de données"
    )
    assert counted("no audit entry older than 12 months", "fr").text == (
        "aucune entrée du journal d’audit de plus de 12 mois"
    )
    unknown = counted("a line the catalogue lacks, 7 times", "fr")
    assert unknown == type(unknown)("a line the catalogue lacks, 7 times", False)
    assert counted("2 staff member(s) with MFA", "en").text == "2 staff member(s) with MFA"
