"""The DPO's contracts desk (headless Chromium): every client's contract and what it lacks,
the sub-processor register with each flow-down agreement, one client's versions with the
SHA-256 of the signed PDF and its Art. 28(3) clauses, and an off-boarding that is not complete
until each sub-processor confirmed its deletion (Art. 28(3), 28(4), 28(3)(g))."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from permanence.context import AccessContext, Role
from permanence.contracts import deletions, offboarding, scc
from permanence.contracts import flowdown as subcontracting
from permanence.contracts import service as contracts
from permanence.contracts.scc_document import Signatory
from permanence.db import utcnow
from permanence.render import paris_date
from tests.e2e.test_browser import Browser
from tests.factories import make_account
from tests.web.conftest import World

pytestmark = pytest.mark.slow


@pytest.mark.gdpr("Art. 28(3)")
def test_art28_3_the_dpo_reads_each_contract_its_missing_items_and_the_flowdown_state(
    world: World, server: str, browser: Any
) -> None:
    from playwright.sync_api import expect

    rt = world.rt
    with rt.db.session(AccessContext(role=Role.DPO, reason="subprocessors")) as s:
        contracts.register_initial(
            s, code="hebergeur", name="Hébergeur Santé", service="hébergement", country="FR"
        )
        contracts.register_initial(
            s, code="sms-eu", name="SMS Europe SA", service="envoi de SMS", country="BE"
        )
        subcontracting.record_flowdown(s, "hebergeur", reference="DPA-H", signed_at=utcnow())
    desk = AccessContext(role=Role.DPO, reason="contract", account_id=world.medical.id)
    with rt.db.session(desk) as s:
        draft = scc.generate_contract(s, rt.settings, effective_from=utcnow())
        digest = scc.sign_generated(
            s,
            rt.settings,
            draft.id,
            signatories=[
                Signatory("controller", "Claire Lefèvre", "titulaire du cabinet"),
                Signatory("processor", "Julien Garnier", "DPO"),
            ],
            signed_at=utcnow() - dt.timedelta(minutes=5),
        ).sha256
    # A third client, off-boarded: one sub-processor confirmed, the other not yet.
    gone = make_account(rt, "cabinet-moreau-avocats")
    ctx = AccessContext(role=Role.DPO, reason="offboard", account_id=gone.id)
    with rt.db.session(ctx) as s:
        offboarding.destroy_account(s, rt.keyring, gone.id, export=None)
        deletions.confirm_deletion(
            s, gone.id, "hebergeur", confirmed_on=paris_date(utcnow()), evidence="attestation H-12"
        )

    dpo = Browser(browser, server)
    dpo.sign_in(world.dpo)
    page = dpo.page
    page.goto("/dpo")
    page.get_by_role("link", name="Contrats").click()
    expect(page.get_by_role("heading", name="Contrats de sous-traitance (art. 28)")).to_be_visible()
    medical = page.get_by_role("row").filter(has_text=world.medical.name)
    expect(medical.get_by_role("cell", name="Rien")).to_be_visible()
    plumber = page.get_by_role("row").filter(has_text=world.plumber.name)
    expect(plumber.get_by_text("Aucun contrat signé en vigueur")).to_be_visible()
    lawyers = page.get_by_role("row").filter(has_text=gone.name)
    expect(
        lawyers.get_by_text("confirmations d'effacement des sous-traitants attendues")
    ).to_be_visible()
    sms = page.get_by_role("row").filter(has_text="SMS Europe SA")
    expect(sms.get_by_text("Aucun accord enregistré")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="Hébergeur Santé")).to_contain_text("DPA-H")
    dpo.check("dpo-contracts")

    medical.get_by_role("link").click()
    expect(page.get_by_role("heading", name=f"Contrat de {world.medical.name}")).to_be_visible()
    expect(page.get_by_text(digest)).to_be_visible()
    expect(page.get_by_text("Claire Lefèvre (titulaire du cabinet)")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="28(3)(g)")).to_contain_text("clause 10")
    dpo.check("dpo-contract")

    page.goto(f"/dpo/contrats/{gone.slug}")
    expect(page.get_by_text("Fin de contrat non terminée", exact=True)).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="sms-eu")).to_contain_text("attendue")
    expect(page.get_by_role("row").filter(has_text="hebergeur")).to_contain_text("attestation H-12")
    assert page.request.get("/dpo/contrats/nope").status == 404
    dpo.close()
