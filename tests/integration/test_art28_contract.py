"""The Art. 28 contract generated on the Commission's SCC (Decision (EU) 2021/915): what it
says, what is stored when signed, clause 7.7 objections that hold a change for one client, and
the flow-down agreements of Art. 28(4); each with the compliance check that proves it."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import update

from permanence.compliance import checks
from permanence.context import AccessContext, Role
from permanence.contracts import flowdown as subcontracting
from permanence.contracts import scc
from permanence.contracts import service as contracts
from permanence.contracts.model import ContractDocument
from permanence.contracts.scc_document import Signatory
from permanence.db import utcnow
from permanence.errors import Conflict, ValidationFailed
from permanence.runtime import Runtime
from tests.conftest import cli_env, run_cli
from tests.factories import ctx_for, make_account

SIGNERS = [
    Signatory("controller", "Claire Lefèvre", "médecin, titulaire du cabinet"),
    Signatory("processor", "Julien Garnier", "délégué à la protection des données"),
]


def _text(pdf: bytes) -> str:
    return " ".join((p.extract_text() or "") for p in PdfReader(io.BytesIO(pdf)).pages)


def _result(rt: Runtime, code: str, now: dt.datetime | None = None) -> checks.CheckResult:
    return next(r for r in checks.run_checks(rt, now) if r.code == code)


def _desk(account_id: object = None) -> AccessContext:
    return AccessContext(role=Role.DPO, reason="contract", account_id=account_id)  # type: ignore[arg-type]


def _register(rt: Runtime, code: str = "hebergeur", *, flowdown: bool = True) -> None:
    with rt.db.session(_desk()) as s:
        contracts.register_initial(
            s, code=code, name=f"Sous-traitant {code}", service="hébergement", country="FR"
        )
        if flowdown:
            subcontracting.record_flowdown(
                s, code, reference=f"DPA-{code}", signed_at=utcnow() - dt.timedelta(days=9)
            )


@pytest.mark.gdpr("Art. 28(3)")
def test_art28_3_contract_generated_on_the_scc_signed_and_its_pdf_stored(rt: Runtime) -> None:
    account = make_account(rt)
    _register(rt)
    with rt.db.session(_desk(account.id)) as s:
        draft = scc.generate_contract(s, rt.settings)
        draft_id = draft.id
        text = _text(scc.draft_pdf(s, rt.settings, draft_id))
    # Clauses by reference: the Decision and clause numbers cited, never their text.
    assert "Décision d'exécution (UE) 2021/915" in text
    assert "Section II, clause 7" in text and "clause 7.7" in text
    assert "incorporées au présent contrat par référence" in text
    # Annex I from the mandate and the settings; II from the mandate; III from the deployment;
    # IV from the live register with its flow-down agreement.
    assert "Cabinet du Dr Claire Lef" in text and "12 rue des Lilas" in text
    assert rt.settings.provider_name in text
    assert "Annexe II - Description du traitement" in text and "art. 9(2)(h)" in text
    assert "Authentifier les utilisateurs" in text and "AES-256-GCM" in text
    assert "Sous-traitant hebergeur" in text and "accord DPA-hebergeur" in text
    assert "Projet non signé" in text
    with (
        rt.db.session(_desk(account.id)) as s,
        pytest.raises(ValidationFailed, match="one person for each party"),
    ):
        scc.sign_generated(s, rt.settings, draft_id, signatories=SIGNERS[:1])
    assert not _result(rt, "contracts.signed").passed
    signed_at = utcnow() - dt.timedelta(days=1)
    with rt.db.session(_desk(account.id)) as s:
        doc = scc.sign_generated(s, rt.settings, draft_id, signatories=SIGNERS, signed_at=signed_at)
        assert doc.sha256 == hashlib.sha256(doc.pdf).hexdigest()
        signed_text = _text(doc.pdf)
        assert "Claire Lefèvre, médecin, titulaire du cabinet, signé le" in signed_text
        assert contracts.contract_in_force(s) is not None
        # What was signed is what is served afterwards, whatever changes later.
        assert scc.draft_pdf(s, rt.settings, draft_id) == doc.pdf
        with pytest.raises(Conflict):
            scc.sign_generated(s, rt.settings, draft_id, signatories=SIGNERS)
    result = _result(rt, "contracts.signed")
    assert result.passed, result.evidence
    # The stored PDF altered behind the product's back: the hash no longer matches.
    with rt.db.session(AccessContext.system("test", account_id=account.id)) as s:
        s.execute(update(ContractDocument).values(pdf=doc.pdf + b"\n% altered"))
    result = _result(rt, "contracts.signed")
    assert result.evidence == [
        "cabinet-lefevre: contract v1: the stored PDF does not match its recorded SHA-256"
    ]


@pytest.mark.gdpr("Art. 28(3)")
def test_art28_3_a_placeholder_contract_of_section_references_fails_the_check(
    rt: Runtime,
) -> None:
    """The contract as the product used to record it: eight section references, signed.
    Nothing an inspector can read: the check fails."""
    account = make_account(rt)
    with rt.db.session(_desk(account.id)) as s:
        placeholder = contracts.record_contract(
            s,
            reference="DPA-1",
            clauses={letter: f"art. {i}" for i, letter in enumerate("abcdefgh", start=2)},
            effective_from=utcnow() - dt.timedelta(days=3),
        )
        contracts.sign_contract(s, placeholder.id)
    result = _result(rt, "contracts.signed")
    assert not result.passed
    assert result.evidence == [
        "cabinet-lefevre: contract v1: not generated on the standard contractual clauses "
        "(Decision (EU) 2021/915)"
    ]


@pytest.mark.gdpr("Art. 28(2)")
def test_art28_2_an_objection_holds_the_change_for_that_client_until_resolved(
    rt: Runtime,
) -> None:
    medical = make_account(rt)
    trades = make_account(rt, "plomberie-durand")
    now = utcnow()
    with rt.db.session(_desk()) as s:
        change = contracts.propose_subprocessor(
            s,
            code="sms-eu",
            name="SMS Europe SA",
            service="envoi de SMS",
            country="BE",
            mailer=None,
            portal_url="https://p.example",
            now=now,
        )
        subcontracting.record_flowdown(s, "sms-eu", reference="DPA-SMS", signed_at=now)
    with rt.db.session(ctx_for(medical.id, role=Role.CLIENT)) as s:
        contracts.object_to_change(s, change.id, "location", now=now + dt.timedelta(days=1))
    assert _result(rt, "subprocessors.objections").passed  # held, not yet in effect
    with rt.db.session(_desk()) as s:
        contracts.apply_due_changes(s, now + dt.timedelta(days=31))
    result = _result(rt, "subprocessors.objections")
    assert not result.passed
    assert result.evidence[0].startswith("cabinet-lefevre: objected to the add of sms-eu")
    # Annex IV: held for the objecting client, listed for the other.
    for account_id, listed in ((medical.id, False), (trades.id, True)):
        with rt.db.session(_desk(account_id)) as s:
            draft = scc.generate_contract(s, rt.settings)
            doc = scc.build_document(s, rt.settings, draft)
        assert ("SMS Europe SA" in [sp.name for sp in doc.subprocessors]) is listed
        assert ("SMS Europe SA" in [sp.name for sp in doc.held]) is not listed
    with rt.db.session(_desk(medical.id)) as s:
        with pytest.raises(ValidationFailed):
            subcontracting.resolve_objection(s, change.id, "ignored")
        subcontracting.resolve_objection(s, change.id, "withdrawn")
        with pytest.raises(Conflict):
            subcontracting.resolve_objection(s, change.id, "withdrawn")
        assert subcontracting.held_changes(s) == []
    assert _result(rt, "subprocessors.objections").passed


@pytest.mark.gdpr("Art. 28(4)")
def test_art28_4_every_subprocessor_is_bound_by_a_flowdown_agreement(rt: Runtime) -> None:
    make_account(rt)
    _register(rt, "hebergeur", flowdown=False)
    result = _result(rt, "subprocessors.flowdown")
    assert result.evidence == ["hebergeur: no flow-down agreement recorded (Art. 28(4))"]
    with rt.db.session(_desk()) as s:
        subcontracting.record_flowdown(
            s, "hebergeur", reference="DPA-H1", signed_at=utcnow(), covers="abc"
        )
    result = _result(rt, "subprocessors.flowdown")
    assert result.evidence == ["hebergeur: agreement DPA-H1 misses point(s) d, e, f, g, h"]
    with rt.db.session(_desk()) as s:
        subcontracting.record_flowdown(
            s, "hebergeur", reference="DPA-H2", signed_at=utcnow(), document=b"%PDF-1.7 x"
        )
        with pytest.raises(ValidationFailed):
            subcontracting.record_flowdown(
                s, "hebergeur", reference="X", signed_at=utcnow(), covers="z"
            )
    assert _result(rt, "subprocessors.flowdown").passed


def test_art28_3_the_dpo_generates_signs_and_checks_a_contract_from_the_command_line(
    rt: Runtime, tmp_path: Path
) -> None:
    make_account(rt)
    _register(rt)
    env = cli_env(rt.settings)
    proc = run_cli(env, "contract", "generate", "--account", "cabinet-lefevre")
    assert proc.returncode == 0, proc.stderr
    assert "version 1 generated, unsigned" in proc.stdout
    draft = tmp_path / "draft.pdf"
    proc = run_cli(env, "contract", "pdf", "--account", "cabinet-lefevre", "--out", str(draft))
    assert proc.returncode == 0, proc.stderr
    assert "2021/915" in _text(draft.read_bytes())
    proc = run_cli(env, "contract", "sign", "--account", "cabinet-lefevre", "--signed-pdf",
                   str(tmp_path / "missing.pdf"), "--controller-name", "C. Lefèvre",
                   "--controller-capacity", "titulaire", "--processor-name", "J. Garnier",
                   "--processor-capacity", "DPO")  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.startswith("error: cannot read")
    scan = tmp_path / "signed.pdf"
    scan.write_bytes(draft.read_bytes())
    proc = run_cli(env, "contract", "sign", "--account", "cabinet-lefevre", "--signed-pdf",
                   str(scan), "--signed-on", "2026-12-01", "--controller-name", "C. Lefèvre",
                   "--controller-capacity", "titulaire", "--processor-name", "J. Garnier",
                   "--processor-capacity", "DPO")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    digest = hashlib.sha256(scan.read_bytes()).hexdigest()
    assert f"PDF stored (uploaded), SHA-256 {digest}" in proc.stdout
    proc = run_cli(env, "contract", "status", "--account", "cabinet-lefevre")
    assert "v1 DPA-cabinet-lefevre-" in proc.stdout
    assert f"in force PDF sha256 {digest}" in proc.stdout
    assert _result(rt, "contracts.signed").passed
