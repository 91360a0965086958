"""End to end, in headless Chromium: an operator takes a call from the live queue with the
keyboard, fills the purpose's form, sees the missing required field, saves; the client reads
and acknowledges the message; a client of another account cannot open it. Each main page is
checked with axe-core and photographed into docs/screenshots/."""

from __future__ import annotations

import re
from typing import Any

import pytest

from permanence.calls import service as calls
from permanence.context import AccessContext, Role
from tests.e2e.conftest import (
    CALLER_ADDRESS,
    CALLER_DESCRIPTION,
    CALLER_NAME,
    CALLER_PHONE,
    SCREENSHOTS,
    axe_violations,
)
from tests.web.conftest import PASSWORD, Person, World

pytestmark = pytest.mark.slow


def ring(world: World, dialled: str = "+33240000001") -> None:
    """A call arrives, as the telephony webhook would open it."""
    with world.rt.db.session(AccessContext(role=Role.SYSTEM, reason="test:telephony")) as s:
        calls.open_call(s, world.rt.keyring, dialled=dialled, caller_number=CALLER_PHONE)


class Browser:
    """One person's browser tab, recording what a careful reviewer would look at."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(
            base_url=base, locale="fr-FR", viewport={"width": 1280, "height": 900}
        )
        self.page = self.context.new_page()
        self.csp_errors: list[str] = []
        self.urls: list[str] = []
        self.titles: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.csp_errors.append(m.text) if "Content Security Policy" in m.text else None
            ),
        )
        self.page.on(
            "framenavigated",
            lambda f: self.urls.append(f.url) if f == self.page.main_frame else None,
        )

    def sign_in(self, who: Person) -> None:
        p = self.page
        p.goto("/connexion")
        p.get_by_label("Adresse électronique").fill(who.email)
        p.get_by_label("Mot de passe").fill(PASSWORD)
        code = who.code()
        if code:
            p.get_by_label("Code d’authentification (personnel)").fill(code)
        p.keyboard.press("Enter")
        p.wait_for_url(lambda url: "/connexion" not in url)

    def check(self, name: str | None = None) -> None:
        """axe-core finds no violation; the title is recorded; optionally a screenshot."""
        self.titles.append(self.page.title())
        bad = axe_violations(self.page)
        assert not bad, f"accessibility problems on {self.page.url}: {bad}"
        if name:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def tab_to(self, accessible_name: str, limit: int = 40) -> None:
        """Move the focus with Tab only until it reaches the control with this name."""
        for _ in range(limit):
            self.page.keyboard.press("Tab")
            label = self.page.evaluate(
                "() => { const e = document.activeElement;"
                " return (e.innerText || e.value || e.getAttribute('aria-label') || '').trim(); }"
            )
            if accessible_name in label:
                return
        raise AssertionError(f"Tab never reached {accessible_name!r}")

    def close(self) -> None:
        self.context.close()


def test_operator_takes_a_call_and_the_client_acknowledges_the_message(
    world: World, server: str, browser: Any, provider: Any
) -> None:
    from playwright.sync_api import expect

    from permanence.delivery.worker import Channels, run_due
    from tests.provider_server import ACCOUNT_SID, AUTH_TOKEN

    # The SMS gateway is the fake provider's Messages API (the one on-call alerts use).
    world.rt.settings.sms_gateway_url = provider.sms_url()
    world.rt.settings.sms_from = "+33700000099"
    world.rt.settings.sms_user, world.rt.settings.sms_password = ACCOUNT_SID, AUTH_TOKEN

    # -- the operator signs in with TOTP and waits at the console
    op = Browser(browser, server)
    op.sign_in(world.operator)
    page = op.page
    expect(page.get_by_role("heading", name="Console", exact=True)).to_be_visible()
    expect(page.get_by_text("Aucun appel en attente.")).to_be_visible()

    # -- a call rings: the queue shows it live (server-sent events), no reload
    ring(world)
    expect(page.get_by_text("1 appel en attente")).to_be_visible(timeout=10_000)
    expect(page.locator("#file-attente")).to_contain_text("Plomberie Durand")
    op.check("console")

    # -- keyboard only: Tab to the call, Enter to take it
    op.tab_to("Prendre l’appel")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console/appels/[0-9a-f-]{36}/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", name="Appel pour Plomberie Durand")).to_be_visible()
    expect(page.get_by_text("Plomberie Durand, bonjour")).to_be_visible()
    expect(page.locator("#enregistrement")).to_contain_text("Enregistrement prévu par le mandat")
    expect(page.locator("#langue-appel")).to_contain_text("français")

    # -- the caller asks for the full notice: one click sends it by SMS, through the ledger
    page.get_by_role("button", name="Envoyer la notice complète par SMS").click()
    expect(page.get_by_text(re.compile(r"Envoyée par SMS à \d\d:\d\d"))).to_be_visible()
    expect(page.get_by_role("button", name="Envoyer la notice complète par SMS")).to_have_count(0)
    op.check()
    run_due(world.rt, channels=Channels.from_settings(world.rt.settings))
    [(to, _sender, body)] = provider.sms
    assert to.endswith(CALLER_PHONE.replace(" ", "")[1:])
    assert body == "Plomberie Durand : https://permanence.example/n/plomberie-durand/1"

    # -- Alt+1 picks the first purpose; the form derived from the mandate appears
    page.keyboard.press("Alt+1")
    page.wait_for_url(re.compile(r"\?motif=intervention$"))
    expect(page.get_by_role("heading", name="Demande d'intervention")).to_be_visible()
    page.get_by_label("Nom").fill(CALLER_NAME)
    # Leaving a field checks it at once (htmx, under the strict CSP).
    page.get_by_label("Téléphone").fill("pas un numéro")
    page.keyboard.press("Tab")
    expect(page.locator("#err-phone")).to_have_text("Cette valeur ne convient pas à ce champ.")
    page.get_by_label("Téléphone").fill(CALLER_PHONE)
    page.keyboard.press("Tab")
    expect(page.locator("#err-phone")).to_be_hidden()
    page.get_by_label("Urgence").select_option("sous 48 heures")
    page.get_by_label("Description du problème").fill(CALLER_DESCRIPTION)
    # The address is required and left empty: saving is refused, the field says why.
    page.get_by_role("button", name="Enregistrer le message").focus()
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    address = page.get_by_label("Adresse de l'intervention")
    expect(address).to_have_attribute("aria-invalid", "true")
    expect(address).to_be_focused()
    expect(page.locator("#err-address")).to_have_text("Ce champ est obligatoire.")
    expect(page.get_by_label("Nom")).to_have_value(CALLER_NAME)  # nothing retyped
    op.check("screen-pop")

    address.fill(CALLER_ADDRESS)
    page.keyboard.press("Alt+s")
    expect(page.get_by_text("Message enregistré.")).to_be_visible()
    op.check()
    page.keyboard.press("Alt+t")
    page.wait_for_url(re.compile(r"/console$"))
    expect(page.locator("table")).to_contain_text("terminé")

    # -- the client user of the plumber reads and acknowledges the message
    client = Browser(browser, server)
    client.sign_in(world.client_plumber)
    cp = client.page
    expect(cp.get_by_role("heading", name="Messages")).to_be_visible()
    expect(cp.get_by_text("Demande d'intervention")).to_be_visible()
    expect(cp.locator("tbody tr").first).to_contain_text(CALLER_NAME)  # read from the list
    client.check("portal-messages")
    cp.locator("table a").first.click()
    expect(cp.get_by_text(CALLER_NAME)).to_be_visible()
    expect(cp.get_by_text(CALLER_ADDRESS)).to_be_visible()
    client.check()
    message_url = cp.url
    cp.get_by_role("button", name="Prendre en charge").click()
    expect(cp.get_by_role("status")).to_contain_text("Pris en charge")
    for link in ("Agenda", "Appels", "Mandat", "Export", "Violations", "Contrat"):
        with cp.expect_navigation():
            cp.get_by_role("navigation", name="Navigation principale").get_by_role(
                "link", name=link, exact=True
            ).click()
        client.check()

    # -- a client user of another account cannot open it: a 404 page, nothing shown
    other = Browser(browser, server)
    other.sign_in(world.client_medical)
    response = other.page.goto(message_url)
    assert response is not None and response.status == 404
    expect(other.page.get_by_role("heading", name="Cette page n’existe pas")).to_be_visible()
    assert CALLER_NAME not in other.page.content()
    other.check()

    # -- no personal data in any URL or title; the CSP never had to block anything
    for b in (op, client, other):
        for text in b.urls + b.titles:
            assert CALLER_NAME not in text and "0612345678" not in text.replace(" ", "")
            assert "612345678" not in text
        assert not b.csp_errors, b.csp_errors
        b.close()


def test_dpo_verifies_the_audit_chain_and_admin_edits_a_mandate(
    world: World, server: str, browser: Any
) -> None:
    from playwright.sync_api import expect

    ring(world)  # something to audit
    dpo = Browser(browser, server)
    dpo.sign_in(world.dpo)
    page = dpo.page
    expect(page.get_by_role("heading", name="Journal d’audit")).to_be_visible()
    expect(page.locator("table")).to_contain_text("call.open")
    page.get_by_role("button", name="Vérifier la chaîne").click()
    expect(page.locator("#verification")).to_contain_text("Chaîne intacte")
    dpo.check("dpo-audit")
    page.get_by_role("link", name="Formation").click()
    expect(
        page.get_by_role("heading", name="Formation et confidentialité du personnel")
    ).to_be_visible()
    dpo.check()
    nav = page.get_by_role("navigation", name="Navigation principale")
    for link, heading in (
        ("Violations", "Registre des violations"),
        ("Registre art. 30", "Registre des activités de traitement (art. 30)"),
        ("Conformité", "Contrôles de conformité"),
    ):
        nav.get_by_role("link", name=link).click()
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        dpo.check()
    page.get_by_role("button", name="Lancer les contrôles").click()
    expect(page.locator("#resultat")).to_contain_text("contrôle(s) en échec sur")
    dpo.check()
    # The evidence pack for an auditor: downloaded, whole and signed.
    from pathlib import Path

    from permanence.compliance.evidence import verify_pack

    with page.expect_download() as download:
        page.get_by_role("link", name="Télécharger le dossier de preuves pour un auditeur").click()
    assert download.value.suggested_filename.startswith("dossier-de-preuves-")
    assert verify_pack(Path(download.value.path()).read_bytes()) == []
    # Audits of the service and of sub-processors: one recorded from the page.
    page.get_by_role("link", name="Audits du service et des sous-traitants").click()
    page.get_by_label("Date de l'audit").fill("2026-11-02")
    page.get_by_label("Périmètre").fill("Revue des accès")
    page.get_by_label("Constats").fill("Comptes inactifs non désactivés")
    page.get_by_label("Prochain audit prévu le").fill("2027-11-02")
    page.get_by_role("button", name="Enregistrer l'audit").click()
    expect(page.get_by_role("status")).to_contain_text("Audit enregistré.")
    dpo.check()
    assert not dpo.csp_errors
    dpo.close()

    admin = Browser(browser, server)
    admin.sign_in(world.admin)
    page = admin.page
    expect(page.get_by_role("heading", name="Comptes clients")).to_be_visible()
    admin.check()
    page.get_by_role("link", name="Plomberie Durand").click()
    page.get_by_role("link", name="Modifier le mandat").click()
    editor = page.get_by_label("Mandat (YAML)")
    text = editor.input_value()
    assert "account: plomberie-durand" in text
    editor.fill(text.replace("escalation_after: PT15M", "escalation_after: PT20M"))
    page.get_by_role("button", name="Vérifier et voir les changements").click()
    expect(page.locator("pre.diff")).to_contain_text("+  escalation_after: PT20M")
    admin.check("admin-mandate-editor")
    page.get_by_role("button", name="Enregistrer comme nouvelle version").click()
    expect(page.get_by_role("status")).to_contain_text("Version 2 enregistrée")
    assert not admin.csp_errors
    admin.close()


def test_the_interface_speaks_english_when_asked(world: World, server: str, browser: Any) -> None:
    from playwright.sync_api import expect

    b = Browser(browser, server)
    b.page.goto("/connexion")
    b.page.get_by_role("link", name="English").click()
    expect(b.page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert b.page.locator("html").get_attribute("lang") == "en"
    b.check()
    b.close()


def test_the_dpo_works_a_breach_from_the_desk(world: World, server: str, browser: Any) -> None:
    """Open (a nature quoting a phone number is refused, then fixed), add the client, describe,
    preview the notice, notify: with the keyboard-reachable forms, axe on each state. Then the
    client, on its portal, follows the notice to the breach, takes its own Art. 34 decision
    (the "encrypted" exception is not offered for a stolen, signed-in laptop) and reads its
    pre-filled CNIL notification."""
    from playwright.sync_api import expect

    dpo = Browser(browser, server)
    dpo.sign_in(world.dpo)
    page = dpo.page
    page.get_by_role("link", name="Ouvrir une violation").first.click()
    expect(page.get_by_role("heading", name="Ouvrir une violation")).to_be_visible()
    assert page.get_by_label("Connue depuis le (heure de Paris)").input_value()  # now
    page.get_by_label("Nature de la violation").fill(
        f"Message transféré par erreur, rappeler le {CALLER_PHONE}"
    )
    page.get_by_role("button", name="Ouvrir la violation").click()
    expect(page.get_by_role("alert")).to_contain_text("contient des données personnelles")
    dpo.check()
    page.get_by_label("Nature de la violation").fill(
        "Ordinateur portable d'une opératrice volé, session ouverte"
    )
    page.get_by_role("button", name="Ouvrir la violation").click()
    expect(page.get_by_role("status")).to_contain_text("La violation est ouverte")
    dpo.check()

    page.get_by_label("Client", exact=True).select_option(label="Plomberie Durand")
    page.get_by_label("Personnes concernées (environ)").fill("12")
    page.get_by_label("Enregistrements concernés (environ)").fill("30")
    page.get_by_role("button", name="Ajouter le client").click()
    expect(page.get_by_role("status")).to_contain_text("Client ajouté")
    for label in ("identité (nom, prénom)", "coordonnées (téléphone, e-mail)", "appelants"):
        page.get_by_label(label, exact=True).check()
    page.get_by_label("Point de contact").fill("dpo@permanence.example")
    page.get_by_label("Conséquences probables").fill("Risque d'appels frauduleux")
    page.get_by_label("Mesures prises ou envisagées").fill("Sessions fermées, poste effacé")
    page.get_by_role("button", name="Enregistrer le contenu").click()
    expect(page.locator("#etat").locator("..")).to_contain_text("Le contenu est complet.")
    dpo.check("dpo-breach")

    page.get_by_role("link", name="Aperçu de l’avis à Plomberie Durand").click()
    expect(page.locator("body")).to_contain_text("article 33(2)")
    dpo.check()
    page.get_by_role("link", name=re.compile("Retour à la violation")).click()
    page.get_by_role("button", name="Notifier les clients (phase 1)").click()
    expect(page.get_by_role("status")).to_contain_text("1 avis envoyé(s).")
    expect(page.locator("#avis-envoyes")).to_contain_text("Plomberie Durand")
    dpo.check()
    assert not dpo.csp_errors
    assert not any(CALLER_PHONE in u or "06%2012" in u for u in dpo.urls)
    dpo.close()

    client = Browser(browser, server)
    client.sign_in(world.client_plumber)
    page = client.page
    page.goto("/portail/violations")
    page.get_by_role("link", name=re.compile("Vos décisions et la notification CNIL")).click()
    expect(
        page.get_by_role("heading", name="Vos décisions de responsable du traitement")
    ).to_be_visible()
    assert "données chiffrées" not in page.get_by_label("Motif (si non requise)").inner_text()
    page.get_by_label("Pas nécessaire, pour ce motif").check()
    page.get_by_role("button", name="Enregistrer ma décision").click()
    expect(page.get_by_role("alert")).to_contain_text("Choisissez le motif")
    client.check()
    page.get_by_label("Motif (si non requise)").select_option(
        label="pas de risque élevé pour les personnes (art. 34(1))"
    )
    page.get_by_role("button", name="Enregistrer ma décision").click()
    expect(page.get_by_role("status")).to_contain_text("Votre décision")
    expect(page.locator("#decision-art34")).to_contain_text("pas de risque élevé")
    client.check("portal-breach")
    page.get_by_role("link", name="La notification à la CNIL, pré-remplie").click()
    expect(
        page.get_by_role("heading", name="Votre notification à la CNIL, pré-remplie")
    ).to_be_visible()
    expect(page.locator("body")).to_contain_text("Plomberie Durand")
    expect(page.locator("body")).to_contain_text("non : pas de risque élevé pour les personnes")
    client.check()
    assert not client.csp_errors
    client.close()


def test_the_dpo_takes_a_phone_request_and_erases_it(
    world: World, server: str, browser: Any
) -> None:
    """A caller asks on the phone to be erased: the DPO takes the request in (the caller found
    by phone number), verifies by calling back the number on file, previews, confirms and
    executes the erasure, then finds the request closed in the register."""
    from playwright.sync_api import expect

    from tests.factories import caller_with_records

    caller_with_records(
        world.rt,
        world.plumber.id,
        first="Odile",
        last=CALLER_NAME,
        phone=CALLER_PHONE,
        email="odile.ldm@exemple.fr",
    )
    dpo = Browser(browser, server)
    dpo.sign_in(world.dpo)
    page = dpo.page
    page.get_by_role("link", name="Demandes de droits").click()
    page.get_by_role("link", name="Enregistrer une demande").click()
    expect(page.get_by_role("heading", name="Enregistrer une demande d'exercice de droits"))
    page.get_by_label("Client", exact=True).select_option(label="Plomberie Durand")
    page.get_by_label("Droit exercé").select_option(label="Effacement (art. 17)")
    expect(page.get_by_label("par téléphone")).to_be_checked()
    page.get_by_label("Numéro de téléphone").fill(CALLER_PHONE)
    page.get_by_role("button", name="Rechercher l'appelant").click()
    expect(page.locator("#resultats")).to_contain_text(CALLER_NAME)
    dpo.check()
    page.get_by_role("button", name="Enregistrer la demande").click()
    expect(page.get_by_role("status")).to_contain_text("La demande est enregistrée")
    reference = page.get_by_role("heading", level=1).inner_text().split()[-1]
    dpo.check()
    page.get_by_role("button", name="Afficher le numéro enregistré pour le rappel").click()
    expect(page.get_by_role("status")).to_contain_text("+33612345678")
    page.get_by_label("rappel au numéro enregistré").check()
    page.get_by_label("Je confirme que la vérification a réussi").check()
    page.get_by_role("button", name="Enregistrer la vérification").click()
    expect(page.get_by_role("status")).to_contain_text("L'identité du demandeur est vérifiée.")
    page.get_by_role("button", name="Aperçu de ce qui sera fait").click()
    expect(page.locator("#apercu")).to_contain_text("appels : 1")
    expect(page.locator("#apercu")).to_contain_text("Destinataires à informer (art. 19)")
    dpo.check("dpo-rights-request")
    page.get_by_role("button", name="Exécuter").click()
    expect(page.get_by_role("alert")).to_contain_text("Confirmez l'effacement")
    page.get_by_label(re.compile("Je confirme l'effacement")).check()
    page.get_by_role("button", name="Exécuter").click()
    expect(page.get_by_role("status")).to_contain_text("La demande est traitée.")
    expect(page.locator("#historique")).to_contain_text("Données effacées, clé détruite")
    page.get_by_role("link", name="Retour au registre").click()
    page.get_by_label("État").select_option(label="traitée")
    page.get_by_role("button", name="Filtrer").click()
    row = page.get_by_role("row").filter(has_text=reference)
    expect(row).to_contain_text("Effacement (art. 17)")
    expect(row).to_contain_text("traitée")
    dpo.check("dpo-rights-register")
    assert not dpo.csp_errors
    assert not any("0612" in u or "%2B33" in u for u in dpo.urls)
    dpo.close()


def test_a_caller_asks_for_access_and_downloads_the_package(
    world: World, server: str, browser: Any, smtp: Any
) -> None:
    """On the public page a caller asks for access with their phone number; the code arrives
    at the e-mail on file (a real SMTP server); they confirm and get a reference; once the
    client grants the request, the link e-mailed to them downloads the package."""
    import io
    import time
    import zipfile

    from playwright.sync_api import expect

    from tests.factories import make_caller

    email = "odile.ldm@exemple.fr"
    make_caller(
        world.rt, world.plumber.id, first="Odile", last=CALLER_NAME, phone=CALLER_PHONE, email=email
    )
    world.rt.settings.public_base_url = server
    caller = Browser(browser, server)
    page = caller.page
    # The caller first reads the notice sent by SMS (the second layer, both languages, axe-clean)
    # and follows its link to the rights page.
    page.goto("/n/plomberie-durand/1?lang=en")
    expect(page.get_by_role("heading", name="Your rights and how to exercise them")).to_be_visible()
    caller.check()
    page.goto("/n/plomberie-durand/1")
    expect(page.get_by_role("heading", name="Vos droits et comment les exercer")).to_be_visible()
    caller.check("caller-notice")
    page.get_by_role("link", name="Vos droits sur vos données").click()
    expect(page.get_by_role("heading", name="Vos droits sur vos données")).to_be_visible()
    caller.check()
    page.get_by_label("Consulter les données me concernant (accès)").check()
    page.get_by_label("Votre numéro de téléphone").fill(CALLER_PHONE)
    page.get_by_role("button", name="Recevoir un code").click()
    expect(page.get_by_role("heading", name="Saisissez votre code")).to_be_visible()
    caller.check()
    deadline = time.monotonic() + 10  # the code is sent after the answer
    while not smtp.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    [(_from, to, _raw)] = smtp.messages
    assert to == [email]
    code = re.search(r"\b(\d{6})\b", smtp.bodies()[0])
    assert code
    page.get_by_label("Code reçu").fill(code.group(1))
    page.get_by_role("button", name="Confirmer ma demande").click()
    expect(page.get_by_role("status")).to_contain_text("Référence : DR-")
    expect(page.get_by_role("status")).to_contain_text("au plus tard le")
    caller.check("caller-rights-page")
    # The client (the controller) grants it from its desk, through the API.
    client = world.login(world.client_plumber)
    listed = client.get(f"/api/v1/accounts/{world.plumber.id}/rights/requests").json()
    [request] = listed
    assert request["verified"] and request["source"] == "caller"
    done = client.post(
        f"/api/v1/accounts/{world.plumber.id}/rights/requests/{request['id']}/execute"
    )
    assert done.status_code == 200, done.text
    link = re.search(r"(http://\S+/api/v1/rights/downloads/\S+)", smtp.bodies()[-1])
    assert link and smtp.messages[-1][1] == [email]
    got = page.request.get(link.group(1))
    assert got.status == 200
    with zipfile.ZipFile(io.BytesIO(got.body())) as z:
        assert "donnees.json" in z.namelist()
        assert CALLER_NAME in z.read("donnees.json").decode()
    assert page.request.get(link.group(1)).status == 409  # single use: already downloaded
    assert not caller.csp_errors
    assert not any(CALLER_PHONE.replace(" ", "") in u for u in caller.urls)
    caller.close()
