"""The mandate's terms in French, as the records of processing (``compliance.art30``) and the
annexes of the contract on the SCC (``contracts.scc_annexes``) both say them: legal bases,
categories of data and of persons, retention periods and the event each runs from, Art. 9.

Pure data on the mandate, so here, below every feature that words it (ADR 0038)."""

from __future__ import annotations

from permanence.mandates.base import FieldCategory, LegalBasis, MandateKind
from permanence.mandates.durations import IsoDuration
from permanence.mandates.mandate import Mandate
from permanence.mandates.purposes import Purpose

BASIS_FR = {
    LegalBasis.CONSENT: "consentement (art. 6(1)(a))",
    LegalBasis.CONTRACT: "exécution d'un contrat ou mesures précontractuelles (art. 6(1)(b))",
    LegalBasis.LEGAL_OBLIGATION: "obligation légale (art. 6(1)(c))",
    LegalBasis.VITAL_INTERESTS: "sauvegarde des intérêts vitaux (art. 6(1)(d))",
    LegalBasis.PUBLIC_TASK: "mission d'intérêt public (art. 6(1)(e))",
    LegalBasis.LEGITIMATE_INTEREST: "intérêt légitime (art. 6(1)(f))",
}
CATEGORY_FR = {
    FieldCategory.IDENTITY: "identité",
    FieldCategory.CONTACT: "coordonnées",
    FieldCategory.ADMINISTRATIVE: "informations administratives",
    FieldCategory.HEALTH: "données de santé",
    FieldCategory.FINANCIAL: "informations financières",
    FieldCategory.FREE_TEXT: "message libre",
    FieldCategory.OTHER: "autres",
}
SUBJECTS_FR = {
    MandateKind.MEDICAL: "patients et autres appelants du cabinet",
    MandateKind.LEGAL: "clients, prospects et autres appelants du cabinet",
    MandateKind.SUPPORT: "utilisateurs appelant le support du client",
}
# The event each retention period runs from, as the retention sweep applies it
# (retention/service.py); kinds no sweep deletes yet are said so.
RETENTION_START_FR = {
    "message": "à compter de la prise du message",
    "appointment": "à compter du début du rendez-vous",
    "call_log": "à compter du début de l'appel",
    "recording": "à compter de l'enregistrement",
    "consent": "durée déclarée au mandat, sans purge automatique dans cette version",
    "evaluation": "à compter de l'évaluation, un an au plus",
    "rights_request": "durée déclarée au mandat, sans purge automatique dans cette version",
}
SPECIAL_BASIS_FR = {
    "art9_2_a": "art. 9(2)(a), consentement explicite",
    "art9_2_h": "art. 9(2)(h), soins sous la responsabilité d'un professionnel de santé "
    "soumis au secret",
}
KIND_FR = {
    "message": "messages",
    "appointment": "rendez-vous",
    "call_log": "journal d'appels",
    "consent": "preuves de consentement",
    "recording": "enregistrements",
    "evaluation": "grilles d'évaluation",
    "rights_request": "demandes d'exercice des droits",
}


def duration_fr(d: IsoDuration) -> str:
    parts = []
    for n, one, many in (
        (d.years, "an", "ans"),
        (d.months, "mois", "mois"),
        (d.weeks, "semaine", "semaines"),
        (d.days, "jour", "jours"),
        (d.hours, "heure", "heures"),
        (d.minutes, "minute", "minutes"),
    ):
        if n:
            parts.append(f"{n} {one if n == 1 else many}")
    return " ".join(parts) or str(d)


def retention_fr(kind: str, d: IsoDuration) -> str:
    """One retention period with the event it runs from."""
    start = RETENTION_START_FR.get(kind, "")
    return f"{KIND_FR.get(kind, kind)} : {duration_fr(d)}" + (f" ({start})" if start else "")


def sensitive_fr(mandate: Mandate, purpose: Purpose) -> str:
    """Art. 9: a purpose with an Art. 9 basis is sensitive whatever its fields' categories
    (recital 35: booking care reveals health); so is one whose fields hold health data."""
    fields = purpose.resolved_fields
    health_fields = any(f.special_category or f.category == FieldCategory.HEALTH for f in fields)
    basis = purpose.special_category_basis
    if basis is None and not health_fields:
        return "non"
    health = health_fields or mandate.kind == MandateKind.MEDICAL or mandate.controller.health_data
    what = "données de santé" if health else "catégorie particulière de données (art. 9)"
    if basis is None:
        return f"oui : {what} (base de l'article 9 non déclarée)"
    return f"oui : {what} ({SPECIAL_BASIS_FR.get(basis.value, basis.value)})"
