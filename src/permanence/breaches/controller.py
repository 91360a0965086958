"""The controller's side of a breach: what the client sees and decides on its portal.

The provider is a processor: it tells each client of every breach affecting its data
(Art. 33(2)) and assists it (Art. 28(3)(f)); judging the risk, notifying the CNIL within its
own 72 hours (Art. 33(1)) and informing the callers (Art. 34) are the client's decisions.
Here the client user, for its own account (row-level security), reads the notices, records
its Art. 34 decision, reads the draft to its callers and the pre-filled CNIL notification.
Nothing here is open to the provider's staff: they never decide Art. 34 for a client.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account
from permanence.accounts.service import mandate_version
from permanence.audit import service as audit
from permanence.breaches.clocks import cnil_clock
from permanence.breaches.model import Breach, BreachAccount, BreachNotice
from permanence.breaches.service import (
    DATA_CATEGORIES,
    SUBJECT_CATEGORIES,
    SUBJECTS_REASONS,
    BreachConflict,
    BreachRefused,
    Draft,
    missing_fr,
)
from permanence.config import Settings
from permanence.context import Role
from permanence.db import ctx_of, utcnow
from permanence.errors import NotFound, PermissionDenied
from permanence.mandates.mandate import Mandate
from permanence.render import paris, render

TO_COMPLETE = "À compléter par vous"


@dataclass(frozen=True)
class NotifiedBreach:
    """One breach as the context's client sees it: only once a notice was sent to it."""

    breach: Breach
    impact: BreachAccount
    notices: list[BreachNotice]

    @property
    def cnil_due(self) -> dt.datetime:
        """The client's own 72 hours, from our first notice (its awareness at the latest)."""
        return cnil_clock(self.breach.aware_at, self.impact.notified_at).due_at

    @property
    def encrypted_allowed(self) -> bool:
        """34(3)(a) only when the data was unintelligible to whoever had it: never when a
        signed-in account (a compromised operator) saw it decrypted."""
        return self.breach.unintelligible and self.breach.scope_actor_id is None


def _client(session: Session) -> None:
    if ctx_of(session).role is not Role.CLIENT:
        raise PermissionDenied("this is the client's own decision, taken from its portal")


def notified_breach(session: Session, reference: str) -> NotifiedBreach:
    """The breach ``reference`` for the context's account; NotFound unless it was notified."""
    account_id = ctx_of(session).require_account()
    breach = session.scalars(select(Breach).where(Breach.reference == reference)).first()
    if breach is None:
        raise NotFound("no notice of this breach for this account")
    impact = session.scalars(
        select(BreachAccount).where(
            BreachAccount.breach_id == breach.id, BreachAccount.account_id == account_id
        )
    ).first()
    notices = list(
        session.scalars(
            select(BreachNotice)
            .where(BreachNotice.breach_id == breach.id, BreachNotice.account_id == account_id)
            .order_by(BreachNotice.phase.desc())
        )
    )
    if impact is None or impact.notified_at is None or not notices:
        raise NotFound("no notice of this breach for this account")
    return NotifiedBreach(breach, impact, notices)


def record_subjects_decision(
    session: Session, reference: str, decision: str, reason: str | None = None
) -> NotifiedBreach:
    """Art. 34: the client decides to ``communicate`` to its callers, or that it is
    ``not_required`` with a reason (34(1) no high risk, or a 34(3) exception). It may revise
    its decision while the breach is open (every decision is in the audit log)."""
    _client(session)
    found = notified_breach(session, reference)
    if decision not in {"communicate", "not_required"}:
        raise BreachRefused("bad_decision", "decision must be communicate or not_required")
    if decision == "not_required":
        if reason not in SUBJECTS_REASONS:
            raise BreachRefused(
                "reason_needed",
                "give the reason: one of " + ", ".join(SUBJECTS_REASONS),
                field="subjects_reason",
            )
        if reason == "encrypted" and not found.encrypted_allowed:
            raise BreachRefused(
                "encrypted_not_open",
                "the data was not unintelligible to whoever had it (Art. 34(3)(a)): the "
                "exception does not apply",
                field="subjects_reason",
            )
    elif reason:
        raise BreachRefused("reason_not_taken", "a decision to communicate takes no reason")
    if found.breach.status == "closed" and found.impact.subjects_decision != "pending":
        raise BreachConflict("closed", "this breach is closed")
    impact = found.impact
    impact.subjects_decision = decision
    impact.subjects_reason = reason if decision == "not_required" else None
    impact.subjects_decided_at = utcnow()
    impact.subjects_decided_by = ctx_of(session).actor_id
    session.flush()
    audit.record(
        session,
        "breach.subjects_decision",
        "breach",
        found.breach.id,
        details={"decision": decision, "why": reason},
    )
    return found


def _mandate(session: Session, account_id: object) -> Mandate | None:
    try:
        _row, mandate = mandate_version(session, account_id)  # type: ignore[arg-type]
    except NotFound:
        return None
    return mandate


def subjects_draft(session: Session, reference: str) -> Draft:
    """The communication to the client's callers (Art. 34(2)), in plain French, signed by
    the client: a draft it adapts and sends itself."""
    found = notified_breach(session, reference)
    account = session.get(Account, found.impact.account_id)
    assert account is not None
    mandate = _mandate(session, account.id)
    controller = mandate.controller.name if mandate else account.name
    contact = mandate.controller.rights_contact if mandate else found.breach.contact_point
    text = render(
        "permanence.breaches",
        "subjects_communication.txt",
        breach=found.breach,
        controller=controller,
        contact=contact,
        data_categories=_labels(found.breach.data_categories, DATA_CATEGORIES),
    )
    return Draft(f"{controller} : information sur un incident concernant vos données", text)


def _labels(codes_json: str, vocabulary: dict[str, str]) -> str:
    codes = json.loads(codes_json)
    return ", ".join(vocabulary.get(c, c) for c in codes) or "à préciser"


# -- the CNIL notification, pre-filled ----------------------------------------------------


@dataclass(frozen=True)
class FormField:
    label: str
    value: str
    to_complete: bool = False


@dataclass(frozen=True)
class FormSection:
    title: str
    fields: list[FormField]


def _f(label: str, value: str | None, hint: str = "") -> FormField:
    if value:
        return FormField(label, value)
    return FormField(label, TO_COMPLETE + (f" ({hint})" if hint else ""), True)


def cnil_form(session: Session, settings: Settings, reference: str) -> list[FormSection]:
    """The client's notification to the CNIL, pre-filled under the headings of the CNIL's
    online notification form, from what we know: the client's identity (its mandate), the
    processor, the chronology, the Art. 33(3) contents for this account, its Art. 34
    decision. What only the client can say (its registration number, its risk assessment,
    the reasons of a late notification) is marked "to complete". Nothing is sent from here:
    the client files it on the CNIL's service within its own 72 hours."""
    found = notified_breach(session, reference)
    breach, impact = found.breach, found.impact
    account = session.get(Account, impact.account_id)
    assert account is not None
    mandate = _mandate(session, account.id)
    c = mandate.controller if mandate else None
    first = min(n.sent_at for n in found.notices)
    latest = max(found.notices, key=lambda n: n.phase)
    missing = missing_fr(breach)
    if breach.scope_actor_id is not None:
        nature_type = (
            "perte de confidentialité : accès non autorisé aux données au moyen d'un compte "
            "du personnel du sous-traitant"
        )
    else:
        nature_type = ""
    decision = {
        "pending": "",
        "communicate": "oui : les personnes concernées sont informées (article 34)",
        "not_required": "non : "
        + SUBJECTS_REASONS.get(impact.subjects_reason or "", impact.subjects_reason or ""),
    }[impact.subjects_decision]
    processor = ", ".join(p for p in (settings.provider_name, settings.provider_address) if p) + (
        f" ; contact : {settings.provider_contact_email}" if settings.provider_contact_email else ""
    )
    dpo = f"{c.dpo.name}, {c.dpo.email}" if c is not None and c.dpo is not None else ""
    late = utcnow() > found.cnil_due
    return [
        FormSection(
            "Type de notification",
            [
                FormField(
                    "Notification",
                    "initiale, à compléter (article 33(4))"
                    if missing
                    else "complète (ou complémentaire, si vous avez déjà fait une notification "
                    "initiale)",
                ),
                FormField("Référence de la violation chez le sous-traitant", breach.reference),
                FormField(
                    "Dernière information reçue du sous-traitant",
                    f"phase {latest.phase}, le {paris(latest.sent_at)} (heure de Paris)",
                ),
            ],
        ),
        FormSection(
            "Organisme (responsable du traitement)",
            [
                _f("Nom ou raison sociale", c.name if c else account.name),
                _f("Adresse", c.address if c else ""),
                _f("Numéro SIREN", None, "non connu du sous-traitant"),
                _f("Secteur d'activité", None),
            ],
        ),
        FormSection(
            "Personne à contacter",
            [
                _f(
                    "Délégué à la protection des données",
                    dpo,
                    "ou la personne en charge de la notification",
                ),
                _f("Adresse électronique de contact", c.contact_email if c else ""),
            ],
        ),
        FormSection(
            "Sous-traitant concerné",
            [FormField("Identité et coordonnées du sous-traitant", processor)],
        ),
        FormSection(
            "Chronologie",
            [
                _f(
                    "Début de la violation",
                    paris(breach.occurred_from) if breach.occurred_from else "",
                    "en cours d'analyse chez le sous-traitant",
                ),
                _f(
                    "Fin de la violation",
                    paris(breach.occurred_to) if breach.occurred_to else "",
                    "ou « en cours »",
                ),
                FormField("Prise de connaissance par le sous-traitant", paris(breach.aware_at)),
                FormField(
                    "Prise de connaissance par vous (notification du sous-traitant)",
                    paris(first),
                ),
                FormField(
                    "Moyen de découverte",
                    "notification de votre sous-traitant (article 33(2))",
                ),
                FormField(
                    "Échéance de votre notification à la CNIL (72 heures)",
                    paris(found.cnil_due),
                ),
                _f(
                    "Motifs du retard",
                    "" if late else "sans objet si vous notifiez avant l'échéance",
                    "délai de 72 heures dépassé : article 33(1)",
                ),
            ],
        ),
        FormSection(
            "Nature de la violation",
            [
                _f(
                    "Type de violation",
                    nature_type,
                    "perte de confidentialité, d'intégrité et/ou de disponibilité",
                ),
                _f("Description des circonstances", breach.nature),
                FormField(
                    "Données chiffrées et inintelligibles pour qui y a eu accès",
                    "oui (clé non compromise)" if found.encrypted_allowed else "non",
                ),
            ],
        ),
        FormSection(
            "Données et personnes concernées",
            [
                _f("Catégories de données", _labels(breach.data_categories, DATA_CATEGORIES)),
                _f(
                    "Nombre approximatif d'enregistrements",
                    str(impact.records) if impact.records else "",
                ),
                _f(
                    "Catégories de personnes",
                    _labels(breach.subject_categories, SUBJECT_CATEGORIES),
                ),
                _f(
                    "Nombre approximatif de personnes",
                    str(impact.subjects) if impact.subjects else "",
                ),
            ],
        ),
        FormSection(
            "Conséquences probables",
            [
                _f("Conséquences pour les personnes", breach.consequences),
                _f(
                    "Gravité estimée du risque",
                    None,
                    "votre appréciation en tant que responsable du traitement",
                ),
            ],
        ),
        FormSection(
            "Mesures",
            [
                _f("Mesures prises ou envisagées", breach.measures),
            ],
        ),
        FormSection(
            "Information des personnes concernées (article 34)",
            [_f("Personnes informées", decision, "enregistrez votre décision sur le portail")],
        ),
    ]
