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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fpdf import FPDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence import __version__
from permanence.accounts.model import Account
from permanence.accounts.service import mandate_version
from permanence.audit import service as audit
from permanence.compliance.art30 import (
    BASIS_FR,
    CATEGORY_FR,
    SUBJECTS_FR,
    provider_identity,
    retention_fr,
    sensitive_fr,
)
from permanence.compliance.services import SAFEGUARD_FR, configured_services
from permanence.config import Settings
from permanence.contracts.model import (
    Contract,
    ContractDocument,
    SubProcessor,
    SubProcessorAgreement,
    SubProcessorChange,
    SubProcessorNotice,
)
from permanence.contracts.service import (
    CLAUSES,
    EEA,
    OBJECTION_WINDOW,
    _contract,
    _desk,
    sign_contract,
)
from permanence.db import ctx_of, utcnow
from permanence.errors import Conflict, NotFound, ValidationFailed
from permanence.mandates.schema import Mandate
from permanence.render import paris

TEMPLATE = "scc-2021/915"
DECISION_FR = (
    "Décision d'exécution (UE) 2021/915 de la Commission du 4 juin 2021 relative aux clauses "
    "contractuelles types entre les responsables du traitement et les sous-traitants visées à "
    "l'article 28, paragraphe 7, du règlement (UE) 2016/679 (JO L 199 du 7.6.2021, p. 18)"
)
# Where the Decision's clauses meet each Art. 28(3) point (what ``Contract.clauses`` holds
# for a generated contract, and what ``contracts.signed`` checks covered).
CLAUSE_MAP: Mapping[str, str] = {
    "a": "clauses 7.1 et 7.8 des CCT 2021/915",
    "b": "clause 7.4, point b), des CCT 2021/915",
    "c": "clause 7.4, point a), des CCT 2021/915 et annexe III",
    "d": "clause 7.7 des CCT 2021/915 et annexe IV",
    "e": "clause 8, points a) et b), des CCT 2021/915",
    "f": "clause 8, point c), et clause 9 des CCT 2021/915",
    "g": "clause 10, point d), des CCT 2021/915",
    "h": "clause 7.6 des CCT 2021/915",
}
# The clauses incorporated, by number and heading (headings only: the text is the Decision's).
INCORPORATED: tuple[tuple[str, str], ...] = (
    ("Section I, clause 1", "Objet et champ d'application"),
    ("Section I, clause 2", "Invariabilité des clauses"),
    ("Section I, clause 3", "Interprétation"),
    ("Section I, clause 4", "Hiérarchie"),
    ("Section II, clause 6", "Description du ou des traitements (annexe II)"),
    ("Section II, clause 7", "Obligations des parties (7.1 à 7.8)"),
    ("Section II, clause 8", "Assistance au responsable du traitement"),
    ("Section II, clause 9", "Notification des violations de données à caractère personnel"),
    ("Section III, clause 10", "Non-respect des clauses et résiliation"),
)
SIGNATORY_PARTIES = ("controller", "processor")
RESOLUTIONS = ("withdrawn", "alternative", "terminated")
RESOLUTION_FR = {
    "withdrawn": "objection levée par le client",
    "alternative": "données du client tenues hors de ce sous-traitant",
    "terminated": "contrat résilié",
}


# -- the document -------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    role_fr: str
    name: str
    address: str
    contact: str
    dpo: str
    activities: str


@dataclass(frozen=True)
class Signatory:
    party: str  # controller | processor
    name: str
    capacity: str

    def as_json(self) -> dict[str, str]:
        return {"party": self.party, "name": self.name, "capacity": self.capacity}


@dataclass(frozen=True)
class SubProcessorLine:
    name: str
    service: str
    country: str
    safeguard_fr: str
    flowdown_fr: str
    held: bool = False


@dataclass(frozen=True)
class SccDocument:
    """Everything the PDF says, built from the database and the settings."""

    reference: str
    version: int
    account_slug: str
    mandate_version: int | None
    effective_from: dt.datetime
    parties: list[Party]
    options: list[tuple[str, str]]
    description: list[tuple[str, str]]
    measures: list[tuple[str, list[str]]]
    subprocessors: list[SubProcessorLine]
    held: list[SubProcessorLine] = field(default_factory=list)


def security_measures_fr(settings: Settings) -> list[tuple[str, list[str]]]:
    """Annex III: what this deployment does, under the headings of the CNIL's security guide
    (« Guide de la sécurité des données personnelles »), each item true of the settings."""
    isolation = (
        "cloisonnement des clients par la sécurité au niveau des lignes de PostgreSQL, "
        "sous un rôle applicatif sans privilège sur le schéma"
        if settings.is_postgres
        else "cloisonnement des clients contrôlé à chaque accès par la couche de service"
    )
    backups = [
        "sauvegardes chiffrées ; un effacement est rejoué sur toute sauvegarde restaurée "
        "(journal d'effacement)"
    ]
    if settings.backup_storage:
        backups.append("copie des sauvegardes hors du serveur (stockage déclaré sous-traitant)")
    hosting = ["hébergement certifié HDS (art. L.1111-8 du code de la santé publique)"]
    if not settings.hds_hosting:
        hosting = ["hébergement non déclaré certifié HDS : aucune donnée de santé admise"]
    return [
        (
            "Sensibiliser les utilisateurs",
            [
                "personnel formé à la protection des données avant tout accès, formation "
                "renouvelée à échéance",
                "engagement de confidentialité signé par chaque membre du personnel "
                "(art. 28(3)(b))",
            ],
        ),
        (
            "Authentifier les utilisateurs",
            [
                "mot de passe et second facteur TOTP obligatoires pour le personnel",
                "verrouillage du compte après échecs répétés",
            ],
        ),
        ("Gérer les habilitations", [isolation, "rôles séparés (opérateur, superviseur, DPO)"]),
        (
            "Tracer les opérations et gérer les incidents",
            [
                "journal d'audit chaîné (SHA-256) de chaque lecture et modification, avec points "
                "de contrôle signés (Ed25519) ; conservé 12 mois au plus",
                "registre des violations ; notification au client de toute violation le "
                "concernant (art. 33(2), clause 9.2)",
            ],
        ),
        (
            "Chiffrer, garantir l'intégrité ou signer",
            [
                "chiffrement AES-256-GCM de chaque donnée sous une clé propre à chaque appelant "
                "(effacement cryptographique)",
                "index aveugles tronqués pour les recherches, sans déchiffrement",
                "flux chiffrés (HTTPS) ; webhooks signés",
            ],
        ),
        ("Sauvegarder et prévoir la continuité d'activité", backups),
        ("Sécuriser les serveurs et l'hébergement", hosting),
        (
            "Encadrer la sous-traitance",
            [
                "sous-traitants ultérieurs liés par les mêmes obligations (art. 28(4)) : "
                "voir annexe IV",
                f"changement annoncé {OBJECTION_WINDOW.days} jours à l'avance, droit "
                "d'opposition (clause 7.7, point a))",
            ],
        ),
    ]


def _description(mandate: Mandate) -> list[tuple[str, str]]:
    """Annex II from the mandate, one block per purpose."""
    out = [
        (
            "Catégories de personnes concernées",
            SUBJECTS_FR.get(mandate.kind, "clients, prospects et autres appelants du client"),
        ),
        (
            "Nature du traitement",
            "réception des appels téléphoniques pour le compte du client, prise de messages "
            "et de rendez-vous, transmission au client selon ses instructions (mandat)",
        ),
    ]
    for p in mandate.purposes:
        categories = ", ".join(sorted({CATEGORY_FR[f.category] for f in p.resolved_fields}))
        retention = " ; ".join(retention_fr(k.value, d) for k, d in p.retention.items())
        out.append(
            (
                f"Finalité « {p.label_fr} » ({p.code})",
                f"base légale : {BASIS_FR[p.legal_basis]} ; données : {categories} ; "
                f"données sensibles : {sensitive_fr(mandate, p)} ; "
                f"durée de conservation : {retention or 'non déclarée'}",
            )
        )
    if mandate.recording.enabled:
        out.append(
            (
                "Enregistrement des appels",
                mandate.recording.purpose_fr or "déclaré au mandat (finalité non précisée)",
            )
        )
    out.append(
        (
            "Durée du traitement",
            "la durée du contrat ; à son terme, restitution et/ou suppression selon le choix "
            "du client, attestée par un certificat signé (clause 10, point d))",
        )
    )
    return out


def _flowdowns(session: Session) -> dict[uuid.UUID, SubProcessorAgreement]:
    latest: dict[uuid.UUID, SubProcessorAgreement] = {}
    for a in session.scalars(
        select(SubProcessorAgreement).order_by(SubProcessorAgreement.signed_at)
    ):
        latest[a.subprocessor_id] = a
    return latest


def held_changes(session: Session) -> list[tuple[SubProcessorChange, SubProcessor]]:
    """Changes the context account objected to, not resolved: held for it (clause 7.7(a))."""
    account_id = ctx_of(session).require_account()
    rows = session.execute(
        select(SubProcessorChange, SubProcessor)
        .join(SubProcessorNotice, SubProcessorNotice.change_id == SubProcessorChange.id)
        .join(SubProcessor, SubProcessor.id == SubProcessorChange.subprocessor_id)
        .where(
            SubProcessorNotice.account_id == account_id,
            SubProcessorNotice.objected_at.is_not(None),
            SubProcessorNotice.resolved_at.is_(None),
        )
    ).all()
    return [(c, sp) for c, sp in rows]


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
    from permanence.compliance.art30 import _provider_dpo

    processor = Party(
        "Sous-traitant",
        settings.provider_name,
        settings.provider_address or "adresse non renseignée (PERMANENCE_PROVIDER_ADDRESS)",
        provider_identity(settings),
        _provider_dpo(session, settings),
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


_LATIN1 = str.maketrans(
    {"’": "'", "‘": "'", "“": '"', "”": '"', "—": "-", "–": "-", "œ": "oe", "Œ": "OE", "…": "..."}
)


def _t(text: str) -> str:
    """The PDF core fonts are Latin-1: map the few typographic characters outside it."""
    return text.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")


def to_pdf(
    doc: SccDocument,
    signatories: Sequence[Signatory] = (),
    signed_at: dt.datetime | None = None,
) -> bytes:
    pdf = FPDF(format="A4")
    title = f"Contrat de sous-traitance {doc.reference} v{doc.version}"
    pdf.set_title(_t(title))
    pdf.set_creator(f"Permanence {__version__}")
    # Reproducible bytes for the same content (the hash identifies what was signed).
    pdf.set_creation_date(signed_at or doc.effective_from)
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    width = pdf.epw

    def heading(text: str, size: int = 13) -> None:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", size)
        pdf.multi_cell(width, 7, _t(text), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)

    def para(text: str) -> None:
        pdf.multi_cell(width, 5, _t(text), new_x="LMARGIN", new_y="NEXT")

    heading("Contrat de sous-traitance (article 28 du RGPD)", 16)
    para(
        f"Référence {doc.reference}, version {doc.version}, en vigueur à compter du "
        f"{paris(doc.effective_from, '%d/%m/%Y')}. Compte client : {doc.account_slug}."
    )
    heading("1. Clauses contractuelles types")
    para(
        "Les parties conviennent que les clauses contractuelles types adoptées par la "
        f"{DECISION_FR}, dans leur version publiée au Journal officiel de l'Union européenne, "
        "sont incorporées au présent contrat par référence et s'appliquent sans modification "
        "(clause 2). Les clauses suivantes s'appliquent :"
    )
    for ref, title_fr in INCORPORATED:
        para(f"- {ref} : {title_fr}")
    heading("2. Options retenues et éléments complétés")
    for label, value in doc.options:
        para(f"- {label} : {value}")
    para("Correspondance avec l'article 28, paragraphe 3, du RGPD :")
    for letter, where in CLAUSE_MAP.items():
        para(f"- point {letter}) : {where}")
    heading("Annexe I - Liste des parties")
    for p in doc.parties:
        para(
            f"{p.role_fr} : {p.name} ; adresse : {p.address} ; contact : {p.contact} ; "
            f"délégué à la protection des données : {p.dpo} ; activités : {p.activities}"
        )
    heading("Annexe II - Description du traitement")
    for label, value in doc.description:
        para(f"{label} : {value}")
    heading("Annexe III - Mesures techniques et organisationnelles")
    for head, items in doc.measures:
        pdf.set_font("Helvetica", "B", 10)
        para(head)
        pdf.set_font("Helvetica", "", 10)
        for item in items:
            para(f"- {item}")
    heading("Annexe IV - Liste des sous-traitants ultérieurs")
    for sp in doc.subprocessors:
        para(
            f"- {sp.name} : {sp.service} ; pays : {sp.country} ; transfert : "
            f"{sp.safeguard_fr} ; {sp.flowdown_fr}"
        )
    if not doc.subprocessors:
        para("Aucun sous-traitant ultérieur.")
    for sp in doc.held:
        para(
            f"- {sp.name} ({sp.service}, {sp.country}) : changement suspendu pour ce client, "
            "objection en cours (clause 7.7, point a))"
        )
    heading("Signatures")
    if signatories:
        when = paris(signed_at or utcnow(), "%d/%m/%Y")
        for s in signatories:
            role = (
                "Pour le responsable du traitement"
                if s.party == "controller"
                else ("Pour le sous-traitant")
            )
            para(f"{role} : {s.name}, {s.capacity}, signé le {when}")
    else:
        para("Projet non signé.")
        para("Pour le responsable du traitement : nom, qualité, date, signature")
        para("Pour le sous-traitant : nom, qualité, date, signature")
    return bytes(pdf.output())


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


# -- sub-processors: clause 7.7 -----------------------------------------------------------


def resolve_objection(
    session: Session, change_id: uuid.UUID, resolution: str, *, now: dt.datetime | None = None
) -> SubProcessorNotice:
    """The provider resolves the context account's objection; the change then applies to it
    ("withdrawn"), or the client's data stays off the sub-processor ("alternative"), or the
    contract ends ("terminated")."""
    _desk(session)
    account_id = ctx_of(session).require_account()
    if resolution not in RESOLUTIONS:
        raise ValidationFailed("resolution must be one of " + ", ".join(RESOLUTIONS))
    notice = session.scalars(
        select(SubProcessorNotice).where(
            SubProcessorNotice.change_id == change_id, SubProcessorNotice.account_id == account_id
        )
    ).first()
    if notice is None:
        raise NotFound("no such change")
    if notice.objected_at is None:
        raise Conflict("this client did not object to the change")
    if notice.resolved_at is not None:
        raise Conflict("this objection is already resolved")
    notice.resolved_at, notice.resolution = now or utcnow(), resolution
    audit.record(
        session,
        "subprocessor.objection_resolved",
        "subprocessor_change",
        change_id,
        details={"resolution": resolution},
    )
    return notice


def record_flowdown(
    session: Session,
    code: str,
    *,
    reference: str,
    signed_at: dt.datetime,
    covers: Sequence[str] = tuple(CLAUSES),
    document: bytes | None = None,
) -> SubProcessorAgreement:
    """Art. 28(4): the contract binding a sub-processor to the same obligations."""
    actor = _desk(session)
    sp = session.scalars(select(SubProcessor).where(SubProcessor.code == code)).first()
    if sp is None:
        raise NotFound(f"no sub-processor '{code}'")
    if not reference.strip():
        raise ValidationFailed("the agreement needs a reference")
    if signed_at.tzinfo is None:
        raise ValidationFailed("the signature date needs a time zone")
    unknown = sorted(set(covers) - set(CLAUSES))
    if unknown:
        raise ValidationFailed(f"unknown Art. 28(3) point(s): {', '.join(unknown)} (a-h)")
    agreement = SubProcessorAgreement(
        subprocessor_id=sp.id,
        reference=reference.strip()[:120],
        signed_at=signed_at,
        covers=json.dumps(sorted(set(covers))),
        sha256=hashlib.sha256(document).hexdigest() if document is not None else None,
        recorded_by=actor,
    )
    session.add(agreement)
    session.flush()
    audit.record(session, "subprocessor.flowdown", "subprocessor", sp.id, details={"code": code})
    return agreement


def flowdown_gaps(session: Session) -> list[str]:
    """Active sub-processors without an agreement covering every Art. 28(3) point."""
    flows = _flowdowns(session)
    gaps = []
    for sp in session.scalars(
        select(SubProcessor).where(SubProcessor.status == "active").order_by(SubProcessor.code)
    ):
        flow = flows.get(sp.id)
        if flow is None:
            gaps.append(f"{sp.code}: no flow-down agreement recorded (Art. 28(4))")
            continue
        missing = sorted(set(CLAUSES) - set(json.loads(flow.covers)))
        if missing:
            gaps.append(
                f"{sp.code}: agreement {flow.reference} misses point(s) {', '.join(missing)}"
            )
    return gaps
