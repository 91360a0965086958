"""Opening hours in the browser: the admin reads and changes them in the mandate editor (a
wrong range is named), the client reads them on its mandate page, in French and English."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.test_browser import Browser
from tests.web.conftest import World

pytestmark = pytest.mark.slow

WEEK_FR = "du lundi au vendredi, 8 h 00 – 18 h 00; fermé les jours fériés (France)"


def test_admin_reads_and_changes_the_plumbers_hours_in_the_editor(
    world: World, server: str, browser: Any
) -> None:
    from playwright.sync_api import expect

    admin = Browser(browser, server)
    admin.sign_in(world.admin)
    page = admin.page
    page.get_by_role("link", name="Plomberie Durand").click()
    page.get_by_role("link", name="Modifier le mandat").click()
    hours = page.locator("#horaires")
    expect(hours.get_by_role("heading", name="Horaires d'ouverture")).to_be_visible()
    expect(hours).to_contain_text(WEEK_FR)
    expect(hours).to_contain_text("En dehors de ces horaires : renvoi vers la personne d'astreinte")
    expect(hours).to_contain_text("Sophie Durand : samedi et dimanche, 8 h 00 – 22 h 00")
    assert "+33600000005" not in (hours.text_content() or "")  # names, never numbers
    admin.check()

    editor = page.get_by_label("Mandat (YAML)")
    text = editor.input_value()
    friday = "    fri:\n    - 08:00-18:00\n"
    assert friday in text
    # Overlapping ranges: the editor names the place and keeps the draft.
    editor.fill(text.replace(friday, "    fri:\n    - 08:00-18:00\n    - 17:00-19:00\n"))
    page.get_by_role("button", name="Vérifier et voir les changements").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "hours.weekly: fri[1]: '17:00-19:00' overlaps '08:00-18:00' (fri[0])"
    )
    expect(page.locator("#horaires")).to_have_count(0)
    admin.check()
    # Closing earlier on Fridays: the draft's schedule is shown in words before saving.
    editor = page.get_by_label("Mandat (YAML)")
    editor.fill(text.replace(friday, "    fri:\n    - 08:00-17:00\n"))
    page.get_by_role("button", name="Vérifier et voir les changements").click()
    expect(page.locator("#horaires")).to_contain_text(
        "du lundi au jeudi, 8 h 00 – 18 h 00; le vendredi, 8 h 00 – 17 h 00; "
        "fermé les jours fériés (France)"
    )
    expect(page.locator("pre.diff")).to_contain_text("08:00-17:00")
    admin.check("admin-mandate-hours")
    page.get_by_role("button", name="Enregistrer comme nouvelle version").click()
    expect(page.get_by_role("status")).to_contain_text("Version 2 enregistrée")
    expect(page.locator("#horaires")).to_contain_text("le vendredi, 8 h 00 – 17 h 00")
    assert not admin.csp_errors
    admin.close()


def test_the_client_reads_its_hours_on_its_mandate_page(
    world: World, server: str, browser: Any
) -> None:
    from playwright.sync_api import expect

    client = Browser(browser, server)
    client.sign_in(world.client_medical)
    page = client.page
    page.goto("/portail/mandat")
    hours = page.locator("#horaires")
    expect(hours).to_contain_text(
        "lundi et mardi, 8 h 30 – 12 h 00 et 14 h 00 – 18 h 00; le mercredi, 8 h 30 – 12 h 00"
    )
    expect(hours).to_contain_text("le 24 décembre 2026 : 8 h 30 – 12 h 00 (veille de Noël)")
    expect(hours).to_contain_text(
        "En dehors de ces horaires : message d'accueil puis messagerie vocale."
    )
    client.check("portal-mandate-hours")
    page.get_by_role("link", name="English").click()
    page.goto("/portail/mandat")
    hours = page.locator("#horaires")
    expect(hours.get_by_role("heading", name="Opening hours")).to_be_visible()
    expect(hours).to_contain_text(
        "Monday and Tuesday, 08:30 – 12:00 and 14:00 – 18:00; Wednesday, 08:30 – 12:00"
    )
    expect(hours).to_contain_text("Out of hours: a greeting, then voicemail.")
    client.check()
    assert not client.csp_errors
    client.close()
