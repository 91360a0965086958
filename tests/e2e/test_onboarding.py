"""End to end, in headless Chromium: an administrator creates an operator; the DPO records
their training (with the attestation) from the training page; the operator signs in with
their new authenticator, is asked to sign the confidentiality undertaking, signs it, and
takes a call from the console."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pyotp
import pytest

from permanence.context import Role
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_browser import Browser, ring
from tests.web.conftest import PASSWORD, Person, World

pytestmark = pytest.mark.slow

NEW_NAME = "Inès Nouvel"
NEW_EMAIL = "ines.nouvel@permanence.example"
ATTESTATION = b"%PDF-1.4\nfeuille d'emargement signee\n%%EOF\n"


def test_a_new_operator_is_onboarded_and_takes_a_call(
    world: World, server: str, browser: Any, tmp_path: Any
) -> None:
    from playwright.sync_api import expect

    # -- the administrator creates the operator; the authenticator URI is shown once
    admin = Browser(browser, server)
    admin.sign_in(world.admin)
    page = admin.page
    page.get_by_role("navigation", name="Navigation principale").get_by_role(
        "link", name="Utilisateurs"
    ).click()
    page.get_by_label("Nom", exact=True).fill(NEW_NAME)
    page.get_by_label("Adresse électronique").fill(NEW_EMAIL)
    page.get_by_label("Rôle", exact=True).select_option("operator")
    page.get_by_label("Mot de passe initial").fill(PASSWORD)
    page.get_by_role("button", name="Créer l’utilisateur").click()
    expect(page.get_by_role("status")).to_contain_text("Utilisateur créé.")
    uri = page.locator("code.wrap").inner_text().strip()
    assert uri.startswith("otpauth://")
    newcomer = Person(uuid.uuid4(), NEW_EMAIL, Role.OPERATOR, pyotp.parse_uri(uri))
    admin.close()

    # -- the DPO sees them blocked, records the training session with its attestation
    dpo = Browser(browser, server)
    dpo.sign_in(world.dpo)
    page = dpo.page
    page.get_by_role("link", name="Formation").click()
    row = page.locator("#recapitulatif tr", has_text=NEW_NAME)
    expect(row).to_contain_text("jamais enregistrée")
    expect(row).to_contain_text("non signé")
    expect(row).to_contain_text("bloqué")
    page.get_by_role("checkbox", name=f"{NEW_NAME} (operator)").check()
    page.get_by_label("Module").select_option("rgpd-fondamentaux")
    page.get_by_label("Formateur ou formatrice").fill("Délégué à la protection des données")
    page.get_by_label("Durée (minutes)").fill("90")
    sheet = tmp_path / "feuille-emargement.pdf"
    sheet.write_bytes(ATTESTATION)
    page.get_by_label(re.compile("^Attestation")).set_input_files(str(sheet))
    page.get_by_role("button", name="Enregistrer la formation").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Formation enregistrée pour 1 membre(s) du personnel."
    )
    row = page.locator("#recapitulatif tr", has_text=NEW_NAME)
    expect(row).not_to_contain_text("jamais enregistrée")
    expect(row).to_contain_text("non signé")  # the undertaking is theirs to sign
    with page.expect_download() as download:
        row.get_by_role("link", name="Attestation").click()
    assert Path(download.value.path()).read_bytes() == ATTESTATION
    dpo.check("dpo-training")

    # -- the operator signs in, is asked to sign the undertaking first, signs it
    op = Browser(browser, server)
    op.sign_in(newcomer)
    page = op.page
    expect(page.get_by_role("heading", name="Engagement de confidentialité")).to_be_visible()
    assert "/engagement" in page.url
    op.check("undertaking")
    page.get_by_role("button", name="Signer l’engagement").click()
    assert "/engagement" in page.url  # the box was not ticked: the browser holds the form
    page.get_by_label("J’ai lu cet engagement et je l’accepte.").check()
    page.get_by_role("button", name="Signer l’engagement").click()
    expect(page.get_by_role("heading", name="Console", exact=True)).to_be_visible()

    # -- and takes a call
    ring(world)
    expect(page.get_by_text("1 appel en attente")).to_be_visible(timeout=10_000)
    page.get_by_role("button", name="Prendre l’appel").click()
    page.wait_for_url(re.compile(r"/console/appels/[0-9a-f-]{36}/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", name="Appel pour Plomberie Durand")).to_be_visible()
    expect(page.get_by_text("Plomberie Durand, bonjour")).to_be_visible()

    # -- the DPO now sees them cleared, with the date they signed
    page = dpo.page
    page.reload()
    row = page.locator("#recapitulatif tr", has_text=NEW_NAME)
    expect(row).to_contain_text("signé le")
    expect(row).to_contain_text("autorisé")
    for b in (dpo, op):
        for text in b.urls + b.titles:
            assert NEW_EMAIL not in text and "Nouvel" not in text
        assert not b.csp_errors, b.csp_errors
        b.close()
    assert SCREENSHOTS.exists()
