"""In headless Chromium (issue 17, "errors the operator can act on" and "translations"): an
operator types a social security number and a date of birth into a note and is told, in
French, what was found where — never the number itself — removes it and saves; a call entered
by hand for a number no account owns is said on the console; the supervisor's live board and
statistics read in English with no French left, and in French with French rates. axe-core on
each page."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.e2e.conftest import CALLER_ADDRESS, CALLER_NAME, CALLER_PHONE
from tests.e2e.test_browser import Browser, ring
from tests.web.conftest import World
from tests.web.test_languages import _foreign

pytestmark = pytest.mark.slow

NIR = "1 85 05 78 006 084 - 91"  # its key set apart, as people write it
NOTE = f"Fuite sous l'évier. Sécu du locataire : {NIR}, née le 12/03/1985."


def test_the_operator_is_told_in_words_what_to_remove(
    world: World, server: str, browser: Any
) -> None:
    from playwright.sync_api import expect

    started = time.monotonic()
    op = Browser(browser, server)
    op.sign_in(world.operator)
    page = op.page

    # -- a number typed by hand that no account owns: said on the console, nothing opened
    page.get_by_label("Numéro composé (la ligne du client)").fill("01 99 00 99 99")
    page.get_by_role("button", name="Ouvrir l’appel").click()
    alert = page.locator("#problemes")
    expect(alert).to_contain_text("Aucun compte client n’a le numéro composé")
    expect(page.get_by_label("Numéro composé (la ligne du client)")).to_have_value("01 99 00 99 99")
    op.check()

    # -- a call: the note holds a social security number and a date of birth
    ring(world)
    expect(page.get_by_text("1 appel en attente")).to_be_visible(timeout=10_000)
    op.tab_to("Prendre l’appel")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console/appels/[0-9a-f-]{36}/[0-9a-f-]{36}$"))
    page.keyboard.press("Alt+1")
    page.wait_for_url(re.compile(r"\?motif=intervention$"))
    page.get_by_label("Nom").fill(CALLER_NAME)
    page.get_by_label("Téléphone").fill(CALLER_PHONE)
    page.get_by_label("Adresse de l'intervention").fill(CALLER_ADDRESS)
    page.get_by_label("Urgence").select_option("sous 48 heures")
    page.get_by_label("Description du problème").fill(NOTE)
    page.keyboard.press("Alt+s")
    page.wait_for_load_state()
    expect(alert).to_contain_text(
        "Un numéro de sécurité sociale a été détecté dans le champ « Description du problème »."
    )
    expect(alert).to_contain_text("Retirez cette donnée : elle ne peut pas être conservée.")
    expect(alert).to_contain_text("Une date de naissance a été détectée")
    shown = alert.inner_text()
    assert "006" not in shown and "1985" not in shown and "NIR" not in shown
    expect(page.get_by_label("Description du problème")).to_have_value(NOTE)  # not retyped
    op.check()

    # -- the operator removes both and saves
    page.get_by_label("Description du problème").fill("Fuite sous l'évier.")
    page.keyboard.press("Alt+s")
    expect(page.get_by_text("Message enregistré.")).to_be_visible()
    op.check()
    op.close()
    print(f"\noperator journey: {time.monotonic() - started:.1f} s")


def test_the_supervisor_reads_the_board_in_english_and_the_rates_in_french(
    world: World, server: str, browser: Any
) -> None:
    from playwright.sync_api import expect

    ring(world)
    sup = Browser(browser, server)
    sup.sign_in(world.supervisor)
    page = sup.page
    page.goto("/supervision")
    expect(page.get_by_role("heading", name="Tableau de bord en direct")).to_be_visible()
    assert not _foreign(page.content(), "fr", set())
    sup.check()
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", name="Live board")).to_be_visible()
    expect(page.locator(".stats-tiles")).to_contain_text("Calls waiting")
    assert not _foreign(page.content(), "en", set())
    sup.check()
    page.get_by_role("link", name=re.compile(r"^see")).first.click()
    expect(page.get_by_role("heading", name=re.compile(r"^Statistics"))).to_be_visible()
    assert not _foreign(page.content(), "en", set())
    rate = page.locator("tr", has_text="Answer rate").locator("td").inner_text()
    assert rate == "–" or re.fullmatch(r"\d+\.\d%", rate), rate
    sup.check()
    page.get_by_role("link", name="Français").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Statistiques"))).to_be_visible()
    rate = page.locator("tr", has_text="Taux de décroché").locator("td").inner_text()
    assert rate == "–" or re.fullmatch(r"\d+,\d\s%", rate), rate
    assert not _foreign(page.content(), "fr", set())
    sup.close()
