"""axe-core on every page, in French and in English (issue 17), in headless Chromium: each page
of tests/web/every_page.py — the list the completeness check holds to the app's routes — opened
by the role it is for, on a real object of the test world; no violation of any impact."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import axe_violations
from tests.e2e.test_browser import Browser
from tests.web.conftest import World
from tests.web.every_page import Page, every_page

pytestmark = pytest.mark.slow


def _settled(page: Any, timeout: float = 10.0) -> None:
    """Wait until no htmx request runs (htmx marks its element ``.htmx-request`` meanwhile);
    polled from here: ``wait_for_function`` evaluates a string, which the CSP forbids."""
    deadline = time.monotonic() + timeout
    while page.evaluate("() => document.querySelector('.htmx-request') !== null"):
        if time.monotonic() > deadline:
            raise AssertionError(f"an htmx request on {page.url} never finished")
        page.wait_for_timeout(50)


def _walk(browser: Any, server: str, pages: list[Page]) -> tuple[int, list[str]]:
    """One browser context per person (signed in once), every page of that person in French
    then in English (the language cookie the language switch sets), checked once the
    fragments it loads (htmx ``hx-trigger="load"``) are in: each fragment of the list must
    have been loaded by a page before axe ran on it."""
    problems: list[str] = []
    walked = 0
    fragments = {p.path for p in pages if p.fragment}
    loaded: set[str] = set()
    people: dict[str, list[Page]] = {}
    for p in pages:
        if not p.fragment:  # a fragment is seen inside the page that loads it
            people.setdefault(p.who.email if p.who else "", []).append(p)
    for group in people.values():
        tab = Browser(browser, server)
        tab.page.on("requestfinished", lambda r: loaded.add(r.url.removeprefix(server)))
        try:
            if group[0].who is not None:
                tab.sign_in(group[0].who)
            for lang in ("fr", "en"):
                tab.context.add_cookies([{"name": "permanence_lang", "value": lang, "url": server}])
                for p in group:
                    response = tab.page.goto(p.path)
                    walked += 1
                    status = response.status if response else None
                    if status != p.status:
                        problems.append(f"{p.path} ({lang}): {status}, not {p.status}")
                        continue
                    # The fragments the page loads are in (htmx marks an element while its
                    # request runs).
                    _settled(tab.page)
                    shown = tab.page.evaluate("document.documentElement.lang")
                    if shown != lang:
                        problems.append(f"{p.path} ({lang}): the page says lang={shown!r}")
                    for v in axe_violations(tab.page):
                        problems.append(f"{p.path} ({lang}): {v['impact']} {v['id']} {v['nodes']}")
            problems += tab.csp_errors
        finally:
            tab.close()
    problems += [f"fragment {f} was never loaded by a page" for f in sorted(fragments - loaded)]
    return walked, problems


def test_axe_finds_nothing_on_any_page_in_french_or_in_english(
    world: World, server: str, browser: Any
) -> None:
    pages = every_page(world)
    started = time.monotonic()
    walked, problems = _walk(browser, server, pages)
    print(f"axe walk: {walked} pages in {time.monotonic() - started:.1f} s")
    assert walked == 2 * sum(1 for p in pages if not p.fragment)
    assert not problems, "\n".join(problems)
