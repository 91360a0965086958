"""The client reads its Art. 28 contract in the portal (headless Chromium): generated on the
Commission's SCC and signed, the portal says so, shows the SHA-256 of the signed document and
downloads the very PDF whose hash it shows; a change the client objected to is said held."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest

from permanence.context import AccessContext, Role
from permanence.contracts import flowdown, scc
from permanence.contracts import service as contracts
from permanence.contracts.scc_document import Signatory
from permanence.db import utcnow
from tests.e2e.test_browser import Browser
from tests.web.conftest import World

pytestmark = pytest.mark.slow


@pytest.mark.gdpr("Art. 28(3)")
def test_art28_3_the_client_downloads_its_signed_contract_from_the_portal(
    world: World, server: str, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    rt = world.rt
    desk = AccessContext(role=Role.DPO, reason="contract", account_id=world.medical.id)
    with rt.db.session(AccessContext(role=Role.DPO, reason="subprocessors")) as s:
        contracts.register_initial(
            s, code="hebergeur", name="Hébergeur Santé", service="hébergement", country="FR"
        )
        flowdown.record_flowdown(s, "hebergeur", reference="DPA-H", signed_at=utcnow())
        change = contracts.propose_subprocessor(
            s,
            code="sms-eu",
            name="SMS Europe SA",
            service="envoi de SMS",
            country="BE",
            mailer=None,
            portal_url=server,
        )
    with rt.db.session(desk) as s:
        draft = scc.generate_contract(s, rt.settings, effective_from=utcnow())
        doc = scc.sign_generated(
            s,
            rt.settings,
            draft.id,
            signatories=[
                Signatory("controller", "Claire Lefèvre", "titulaire du cabinet"),
                Signatory("processor", "Julien Garnier", "DPO"),
            ],
            signed_at=utcnow() - dt.timedelta(minutes=5),
        )
        digest = doc.sha256

    client = Browser(browser, server)
    client.sign_in(world.client_medical)
    page = client.page
    page.goto("/portail/contrat")
    expect(page.get_by_text("décision (UE) 2021/915")).to_be_visible()
    expect(page.get_by_text(f"Empreinte SHA-256 du document signé : {digest}")).to_be_visible()
    # The client objects to the announced change: the page says it is held for the account.
    page.get_by_role("button", name="S’opposer à ce changement").click()
    expect(page.get_by_text("Le changement est suspendu pour votre compte")).to_be_visible()
    client.check("portal-contract")
    with page.expect_download() as info:
        page.get_by_role("link", name="Télécharger le contrat signé (PDF)").click()
    saved = tmp_path / "contrat.pdf"
    info.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == digest
    with rt.db.session(desk) as s:
        assert [c.id for c, _sp in flowdown.held_changes(s)] == [change.id]
    # Another account's version number is not this client's document.
    assert page.request.get("/portail/contrat/v2.pdf").status == 404
    client.close()
