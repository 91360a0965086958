"""End to end, in headless Chromium: a client user changes her password and her other browser
is signed out; she then forgets it and sets a new one from the link e-mailed to her (a real
SMTP server); an operator makes recovery codes and one of them signs him in once, not twice."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import SmtpSink
from tests.e2e.test_browser import Browser
from tests.web.conftest import PASSWORD, World

pytestmark = pytest.mark.slow

CHANGED = "trois mots pour commencer"
RESET = "une autre phrase bien longue"


@pytest.fixture(autouse=True)
def quiet_mail_server() -> Iterator[None]:
    """The test's SMTP server (aiosmtpd) logs each envelope: not ours, kept out of the check
    of the product's server logs."""
    logger = logging.getLogger("mail.log")
    before = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(before)


def test_password_change_reset_by_e_mail_and_a_recovery_code(
    world: World, server: str, browser: Any, smtp: SmtpSink
) -> None:
    from playwright.sync_api import expect

    world.rt.settings.public_base_url = server  # the e-mailed links point at this server
    who = world.client_medical

    # -- signed in twice (office and home); the password is changed from the office
    office, home = Browser(browser, server), Browser(browser, server)
    office.sign_in(who)
    home.sign_in(who)
    page = office.page
    page.get_by_role("link", name="Mot de passe et sécurité").click()
    expect(page.get_by_role("heading", name="Mot de passe et sécurité")).to_be_visible()
    page.get_by_label("Mot de passe actuel").fill(PASSWORD)
    page.get_by_label("Nouveau mot de passe", exact=True).fill("aaaaaaaa")
    page.get_by_label("Nouveau mot de passe, une seconde fois").fill("aaaaaaaa")
    page.get_by_role("button", name="Changer le mot de passe").click()
    expect(page.get_by_role("alert")).to_contain_text("il répète les mêmes caractères")
    office.check()
    page.get_by_label("Mot de passe actuel").fill(PASSWORD)
    page.get_by_label("Nouveau mot de passe", exact=True).fill(CHANGED)
    page.get_by_label("Nouveau mot de passe, une seconde fois").fill(CHANGED)
    page.get_by_role("button", name="Changer le mot de passe").click()
    expect(page.get_by_role("status")).to_contain_text("Vos autres sessions ont été fermées")
    assert "votre mot de passe a été changé" in smtp.bodies()[0]  # she is told by e-mail
    # The other browser is signed out at its next page.
    home.page.goto("/portail/messages")
    expect(home.page.get_by_role("heading", name="Connexion")).to_be_visible()
    assert "/connexion" in home.page.url
    office.close()

    # -- at home she cannot remember it: a link by e-mail
    p = home.page
    p.goto("/connexion")
    p.get_by_role("link", name="Mot de passe oublié ?").click()
    p.get_by_label("Adresse électronique").fill(who.email)
    p.get_by_role("button", name="Envoyer le lien").click()
    expect(p.get_by_role("status")).to_contain_text("un lien pour choisir un nouveau mot de passe")
    home.check()
    assert len(smtp.messages) == 2 and smtp.messages[1][1] == [who.email]
    link = re.search(r"http://\S+/connexion/reinitialiser/\S+", smtp.bodies()[1])
    assert link
    p.goto(link.group(0))
    p.get_by_label("Nouveau mot de passe", exact=True).fill(RESET)
    p.get_by_label("Nouveau mot de passe, une seconde fois").fill(RESET)
    p.get_by_role("button", name="Enregistrer le nouveau mot de passe").click()
    expect(p.get_by_role("heading", name="Mot de passe changé")).to_be_visible()
    p.goto(link.group(0))  # the link served once
    expect(p.get_by_role("heading", name="Ce lien ne fonctionne pas")).to_be_visible()
    p.goto("/connexion")
    p.get_by_label("Adresse électronique").fill(who.email)
    p.get_by_label("Mot de passe").fill(RESET)
    p.keyboard.press("Enter")
    p.wait_for_url(lambda url: "/portail/messages" in url)
    home.close()

    # -- an operator makes recovery codes; one signs him in once, not twice
    op = Browser(browser, server)
    op.sign_in(world.operator)
    q = op.page
    q.get_by_role("link", name="Mot de passe et sécurité").click()
    q.get_by_role("button", name="Créer de nouveaux codes de secours").click()
    expect(q.get_by_role("status")).to_contain_text("affichés une seule fois")
    op.check()
    code = q.locator("ul.codes code").first.inner_text()
    assert re.fullmatch(r"[a-z2-9]{5}-[a-z2-9]{5}", code)
    op.close()
    for attempt in range(2):
        b = Browser(browser, server)
        b.page.goto("/connexion")
        b.page.get_by_label("Adresse électronique").fill(world.operator.email)
        b.page.get_by_label("Mot de passe").fill(PASSWORD)
        b.page.get_by_label("Code d’authentification (personnel)").fill(code)
        b.page.keyboard.press("Enter")
        if attempt == 0:
            b.page.wait_for_url(lambda url: "/console" in url)
        else:
            expect(b.page.get_by_role("alert")).to_contain_text("non reconnu")
        b.close()
