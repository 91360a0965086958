"""The DPO writes and validates a DPIA from the desk, the client gives its opinion from the
portal (headless Chromium); the compliance check follows (Art. 35)."""

from __future__ import annotations

from typing import Any

import pytest

from permanence.compliance import checks
from tests.e2e.test_browser import Browser
from tests.web.conftest import World

pytestmark = pytest.mark.slow


def _dpia_check(world: World) -> checks.CheckResult:
    return next(r for r in checks.run_checks(world.rt) if r.code == "dpia.current")


@pytest.mark.gdpr("Art. 35")
def test_art35_the_dpo_writes_and_validates_a_dpia_and_the_client_gives_its_opinion(
    world: World, server: str, browser: Any
) -> None:
    from playwright.sync_api import expect

    assert "cabinet-lefevre (health): no validated DPIA" in _dpia_check(world).evidence
    dpo = Browser(browser, server)
    dpo.sign_in(world.dpo)
    page = dpo.page
    page.goto("/dpo/aipd")
    row = page.get_by_role("row").filter(has_text=world.medical.slug)
    expect(row.get_by_text("Aucune analyse validée")).to_be_visible()
    dpo.check("dpo-dpia-list")
    row.get_by_role("link").click()
    # Prefilled from the mandate and the deployment, on the CNIL PIA structure.
    expect(page.get_by_label("Traitement, données, cycle de vie et supports")).to_contain_text(
        "art. 9(2)(h)"
    )
    page.locator("#illegitimate_access-severity").select_option("4")
    page.get_by_label("Plan d'action").fill("Revue trimestrielle des habilitations.")
    dpo.check("dpo-dpia")
    page.get_by_role("button", name="Enregistrer comme nouvelle version").click()
    expect(page.get_by_text("Nouvelle version enregistrée")).to_be_visible()
    page.get_by_label("Avis du DPO sur la version 1").fill("Risque résiduel acceptable.")
    page.get_by_role("button", name="Valider cette version").click()
    expect(page.get_by_text("Version validée.")).to_be_visible()
    page.goto("/dpo/aipd")
    expect(
        page.get_by_role("row").filter(has_text=world.medical.slug).get_by_text("À jour")
    ).to_be_visible()
    assert not any("cabinet-lefevre" in e for e in _dpia_check(world).evidence)

    client = Browser(browser, server)
    client.sign_in(world.client_medical)
    cp = client.page
    cp.goto("/portail/aipd")
    expect(cp.get_by_text("Risque résiduel acceptable.")).to_be_visible()
    expect(cp.get_by_role("cell", name="maximale")).to_be_visible()
    cp.get_by_label("Votre avis de responsable du traitement").fill("Avis favorable.")
    client.check("portal-dpia")
    cp.get_by_role("button", name="Enregistrer mon avis").click()
    expect(cp.get_by_text("Votre avis est enregistré.")).to_be_visible()
    expect(cp.get_by_text("Avis favorable.")).to_be_visible()
    dpo.close()
    client.close()
