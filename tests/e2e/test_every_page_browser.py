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


def _walk(browser: Any, server: str, pages: list[Page]) -> tuple[int, list[str]]:
    """One browser context per person (signed in once), every page of that person in French
    then in English (the language cookie the language switch sets), checked."""
    problems: list[str] = []
    walked = 0
    people: dict[str, list[Page]] = {}
    for p in pages:
        if not p.fragment:  # a fragment is seen inside the page that loads it
            people.setdefault(p.who.email if p.who else "", []).append(p)
    for group in people.values():
        tab = Browser(browser, server)
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
                    shown = tab.page.evaluate("document.documentElement.lang")
                    if shown != lang:
                        problems.append(f"{p.path} ({lang}): the page says lang={shown!r}")
                    for v in axe_violations(tab.page):
                        problems.append(f"{p.path} ({lang}): {v['impact']} {v['id']} {v['nodes']}")
            problems += tab.csp_errors
        finally:
            tab.close()
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
