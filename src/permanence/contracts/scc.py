"""The Art. 28 contract generated on the Commission's standard contractual clauses.

Commission Implementing Decision (EU) 2021/915 of 4 June 2021 adopts standard contractual
clauses between controllers and processors (Art. 28(7) GDPR). The contract this module writes
incorporates them **by reference** (the Decision and its clause numbers are cited, the text is
never reproduced) and fills what the parties must fill, in French:

- Annex I, the list of parties: the controller from the account's mandate, the processor from
  the deployment's settings (Art. 30(2)(a) identity) and its DPO;
- Annex II, the description of the processing: from the mandate in force (purposes, data
  subjects, categories, sensitive data and their Art. 9 basis, retention with its starting event);
- Annex III, the technical and organisational measures: from what the deployment does (its
  settings), under the headings of the CNIL's security guide;
- Annex IV, the sub-processors: the live register, minus any change this client objected to
  (clause 7.7(a): an objection holds the change for that client until it is resolved), each with
  its flow-down agreement (Art. 28(4), clause 7.7(b)).

The issue that asked for this numbered the annexes I to III after the list of parties; the
Decision's own numbering (I parties, II description, III measures, IV sub-processors) is used.

Each signed version is stored: the PDF as signed, its SHA-256, the date and the signatories
(``ContractDocument``). ``contracts.signed`` (compliance/checks.py) checks that document.

This module builds the document and carries the use cases (generate, draft, sign, the stored
document and its problems). Its parts: ``scc_document`` (the document's parts, the constants
it cites and its PDF), ``scc_annexes`` (Annexes II and III in French) and ``flowdown``
(clause 7.7 holds and the Art. 28(4) flow-down agreements).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account
from permanence.accounts.service import mandate_version
from permanence.audit import service as audit
from permanence.config import Settings
from permanence.contracts.base import _desk
from permanence.contracts.configured import SAFEGUARD_FR, configured_services
from permanence.contracts.flowdown import _flowdowns, held_changes
from permanence.contracts.model import (
    Contract,
    ContractDocument,
    SubProcessor,
    SubProcessorAgreement,
)
from permanence.contracts.provider import provider_dpo, provider_identity
from permanence.contracts.scc_annexes import _description, security_measures_fr
from permanence.contracts.scc_document import (
    CLAUSE_MAP,
    SIGNATORY_PARTIES,
    TEMPLATE,
    Party,
    SccDocument,
    Signatory,
    SubProcessorLine,
    to_pdf,
)
from permanence.contracts.service import (
    CLAUSES,
    EEA,
    OBJECTION_WINDOW,
    _contract,
    sign_contract,
)
from permanence.db import ctx_of, utcnow
from permanence.errors import Conflict, NotFound, ValidationFailed
from permanence.render import paris


def _sp_line(sp: SubProcessor, flow: SubProcessorAgreement | None, held: bool) -> SubProcessorLine:
    safeguard = "dans l'EEE" if sp.country in EEA else SAFEGUARD_FR.get(sp.safeguard, sp.safeguard)
    flow_fr = (
        f"accord {flow.reference} du {paris(flow.signed_at, '%d/%m/%Y')} (art. 28(4))"
        if flow is not None
        else "accord de sous-traitance ultérieure non enregistré"
    )
    return SubProcessorLine(sp.name, sp.service, sp.country, safeguard, flow_fr, held)


def build_document(session: Session, settings: Settings, contract: Contract) -> SccDocument:
    """The contract of the context account as of now (the live register and mandate)."""
    account = session.get(Account, contract.account_id)
    if account is None:
        raise NotFound("no such account")
    try:
        _row, mandate = mandate_version(session, account.id)
    except NotFound as exc:
        raise ValidationFailed("the account has no mandate: the contract describes it") from exc
    c = mandate.controller
    controller = Party(
        "Responsable du traitement",
        c.name,
        c.address,
        c.contact_email,
        f"{c.dpo.name} <{c.dpo.email}>" if c.dpo else "aucun désigné",
        "services de permanence téléphonique reçus du sous-traitant",
    )
    processor = Party(
        "Sous-traitant",
        settings.provider_name,
        settings.provider_address or "adresse non renseignée (PERMANENCE_PROVIDER_ADDRESS)",
        provider_identity(settings),
        provider_dpo(session, settings),
        "permanence téléphonique pour le compte du responsable du traitement",
    )
    held_ids = {sp.id for change, sp in held_changes(session) if change.kind == "add"}
    flows = _flowdowns(session)
    lines: list[SubProcessorLine] = []
    held: list[SubProcessorLine] = []
    for sp in session.scalars(
        select(SubProcessor).where(SubProcessor.status == "active").order_by(SubProcessor.name)
    ):
        line = _sp_line(sp, flows.get(sp.id), sp.id in held_ids)
        (held if line.held else lines).append(line)
    # Configured services outside the register are still named: the annex says what is used.
    for svc in configured_services(session, settings):
        if svc.entry is None:
            lines.append(
                SubProcessorLine(
                    svc.name,
                    svc.service_fr,
                    svc.country or "??",
                    svc.safeguard_fr,
                    "non inscrit au registre des sous-traitants",
                )
            )
    return SccDocument(
        reference=contract.reference,
        version=contract.version,
        account_slug=account.slug,
        mandate_version=contract.mandate_version,
        effective_from=contract.effective_from,
        parties=[controller, processor],
        options=[
            ("Clause 5 (clause d'amarrage)", "non retenue"),
            (
                "Clause 7.7, point a)",
                f"option 2 : autorisation écrite générale ; préavis de {OBJECTION_WINDOW.days} "
                "jours pour tout ajout ou remplacement, avec droit d'opposition",
            ),
            (
                "Clause 7.8 (transferts)",
                "uniquement vers les destinataires de l'annexe IV, avec l'outil du chapitre V "
                "indiqué",
            ),
            (
                "Instructions documentées (clause 7.1)",
                f"le mandat du client, version {contract.mandate_version or '-'} à la "
                "signature, et ses versions ultérieures",
            ),
        ],
        description=_description(mandate),
        measures=security_measures_fr(settings),
        subprocessors=lines,
        held=held,
    )


# -- use cases ----------------------------------------------------------------------------


def generate_contract(
    session: Session,
    settings: Settings,
    *,
    effective_from: dt.datetime | None = None,
    reference: str | None = None,
) -> Contract:
    """A new, unsigned version of the context account's contract on the SCC (DPO desk)."""
    from permanence.contracts.service import record_contract

    account_id = ctx_of(session).require_account()
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound("no such account")
    try:
        mandate_version(session, account_id)
    except NotFound as exc:
        raise ValidationFailed("the account has no mandate: the contract describes it") from exc
    when = effective_from or utcnow()
    contract = record_contract(
        session,
        reference=reference or f"DPA-{account.slug}-{when.year}",
        clauses=CLAUSE_MAP,
        effective_from=when,
    )
    contract.template = TEMPLATE
    session.flush()
    return contract


def draft_pdf(session: Session, settings: Settings, contract_id: uuid.UUID) -> bytes:
    """The document of a version: as signed when it was, else the draft as of now."""
    contract = _contract(session, contract_id)
    stored = document_of(session, contract.id)
    if stored is not None:
        return stored.pdf
    if contract.template != TEMPLATE:
        raise Conflict("this version was not generated on the standard contractual clauses")
    return to_pdf(build_document(session, settings, contract))


def _signatories(raw: Sequence[Signatory]) -> list[Signatory]:
    out = []
    for s in raw:
        if s.party not in SIGNATORY_PARTIES:
            raise ValidationFailed("a signatory signs for the controller or the processor")
        if not s.name.strip() or not s.capacity.strip():
            raise ValidationFailed(
                "each signatory needs a name and a capacity (nom et qualité du signataire)"
            )
        out.append(Signatory(s.party, s.name.strip()[:200], s.capacity.strip()[:200]))
    if sorted(s.party for s in out) != sorted(SIGNATORY_PARTIES):
        raise ValidationFailed(
            "the contract is signed by one person for each party (responsable du traitement "
            "et sous-traitant)"
        )
    return out


def sign_generated(
    session: Session,
    settings: Settings,
    contract_id: uuid.UUID,
    *,
    signatories: Sequence[Signatory],
    signed_at: dt.datetime | None = None,
    signed_pdf: bytes | None = None,
) -> ContractDocument:
    """Sign a generated version and store what was signed.

    Without ``signed_pdf`` the stored PDF is the generated contract with the signature block
    filled in; with it, the countersigned copy the parties signed outside the product (a PDF).
    """
    actor = _desk(session)
    contract = _contract(session, contract_id)
    if contract.template != TEMPLATE:
        raise Conflict("this version was not generated on the standard contractual clauses")
    if contract.signed_at is not None:
        raise Conflict("this contract version is already signed")
    people = _signatories(signatories)
    when = signed_at or utcnow()
    if when.tzinfo is None:
        raise ValidationFailed("the signature date needs a time zone")
    if signed_pdf is not None:
        if not signed_pdf.startswith(b"%PDF-"):
            raise ValidationFailed("the signed copy must be a PDF file")
        pdf, source = signed_pdf, "uploaded"
    else:
        pdf = to_pdf(build_document(session, settings, contract), people, when)
        source = "generated"
    sign_contract(session, contract.id, signed_at=when)
    digest = hashlib.sha256(pdf).hexdigest()
    document = ContractDocument(
        account_id=contract.account_id,
        contract_id=contract.id,
        pdf=pdf,
        sha256=digest,
        signed_at=when,
        signatories=json.dumps([p.as_json() for p in people], ensure_ascii=False),
        source=source,
        stored_by=actor,
    )
    session.add(document)
    session.flush()
    audit.record(
        session,
        "contract.document",
        "contract",
        contract.id,
        details={"version": contract.version, "sha256": digest, "source": source},
    )
    return document


def document_of(session: Session, contract_id: uuid.UUID) -> ContractDocument | None:
    return session.scalars(
        select(ContractDocument).where(ContractDocument.contract_id == contract_id)
    ).first()


def document_problems(contract: Contract, document: ContractDocument | None) -> list[str]:
    """Why a contract in force is not backed by a stored, signed document (empty if it is)."""
    if contract.template != TEMPLATE:
        return ["not generated on the standard contractual clauses (Decision (EU) 2021/915)"]
    if document is None:
        return ["no signed document stored"]
    problems = []
    if not document.pdf.startswith(b"%PDF-"):
        problems.append("the stored document is not a PDF")
    if hashlib.sha256(document.pdf).hexdigest() != document.sha256:
        problems.append("the stored PDF does not match its recorded SHA-256")
    parties = sorted(str(s.get("party")) for s in json.loads(document.signatories or "[]"))
    if parties != sorted(SIGNATORY_PARTIES):
        problems.append("not signed for both parties")
    covered = json.loads(contract.clauses)
    if any(not covered.get(letter) for letter in CLAUSES):
        problems.append("an Art. 28(3) point is not mapped to a clause")
    return problems


def signatories_of(document: ContractDocument) -> list[Signatory]:
    return [Signatory(**s) for s in json.loads(document.signatories)]
