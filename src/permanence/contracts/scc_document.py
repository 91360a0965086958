"""The Art. 28 contract as a document: its parts (parties, annexes, sub-processors, the
signatories) and its PDF, the bytes whose SHA-256 identifies what was signed (contracts/scc.py
builds the document from the database and the settings)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from permanence import __version__
from permanence.db import utcnow
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
    from fpdf import FPDF  # imported here: fpdf (with fontTools) is ~0.5 s of start-up

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
