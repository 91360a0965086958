"""The Art. 30 records are generated from the mandates: a new purpose shows at once."""

from __future__ import annotations

import csv
import io

import pytest
import yaml

from permanence.accounts.service import import_mandate
from permanence.compliance import art30
from permanence.context import AccessContext, Role
from permanence.runtime import Runtime
from tests.factories import demo_mandate_text, make_account


@pytest.mark.gdpr("Art. 30")
def test_the_record_regenerates_after_a_mandate_change(rt: Runtime) -> None:
    account = make_account(rt, "plomberie-durand")
    system = AccessContext.system("art30")
    with rt.db.session(system) as s:
        before = art30.export(s, rt.settings, "csv")
    assert "Relance commerciale" not in before
    doc = yaml.safe_load(demo_mandate_text("plomberie-durand"))
    new_purpose = dict(doc["purposes"][0])
    new_purpose.update(
        code="prospection",
        label_fr="Relance commerciale",
        legal_basis="legitimate_interest",
        legitimate_interest="proposer l'entretien annuel de la chaudière",
        retention={"message": "P3Y", "call_log": "P1Y"},
    )
    new_purpose.pop("label_en", None)
    doc["purposes"].append(new_purpose)
    with rt.db.session(AccessContext.system("test", account.id)) as s:
        import_mandate(s, doc, account_id=account.id)
    with rt.db.session(system) as s:
        text = art30.export(s, rt.settings, "csv")
        html = art30.export(s, rt.settings, "html")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    mine = [r for r in rows if r["Registre"] == "30(2)"]
    assert "Relance commerciale" in {r["Finalité(s) du traitement"] for r in mine}
    new = next(r for r in mine if r["Finalité(s) du traitement"] == "Relance commerciale")
    assert new["Version des instructions (mandat)"] == "2"
    assert new["Base légale"].startswith("intérêt légitime (art. 6(1)(f))")
    assert "messages : 3 ans" in new["Durées de conservation"]
    assert [c for _k, c in art30.CSV_COLUMNS] == list(rows[0].keys())
    assert any(r["Registre"] == "30(1)" for r in rows)  # the provider's own record
    assert "Relance commerciale" in html and "article 30(2)" in html


@pytest.mark.gdpr("Art. 9(2)")
def test_health_data_shows_as_sensitive_with_its_art_9_basis(rt: Runtime) -> None:
    make_account(rt)
    with rt.db.session(AccessContext(role=Role.DPO, reason="art30")) as s:
        records = art30.processor_record(s, rt.settings)
    message = next(r for r in records if r.purposes == "Message pour le médecin")
    assert message.sensitive_data.startswith("oui : données de santé (art. 9(2)(h)")
    assert "données de santé" in message.data_categories
