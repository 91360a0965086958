"""What the breach register's stages share: the vocabularies (Art. 33(3), 34), who may use the
desk, the refusals, and the checks on what is typed."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account
from permanence.breaches.model import Breach, BreachAccount
from permanence.context import Role
from permanence.db import acting_for, ctx_of
from permanence.errors import Conflict, PermissionDenied, ValidationFailed
from permanence.pii import STRUCTURED_TYPES, detect

DATA_CATEGORIES = {
    "identity": "identité (nom, prénom)",
    "contact": "coordonnées (téléphone, e-mail)",
    "health": "données de santé",
    "message_content": "contenu des messages",
    "appointments": "rendez-vous",
    "call_logs": "journaux d'appels",
    "recordings": "enregistrements d'appels",
    "client_accounts": "comptes des utilisateurs clients",
    "staff": "données du personnel",
    "credentials": "identifiants de connexion",
}
SUBJECT_CATEGORIES = {
    "callers": "appelants",
    "patients": "patients",
    "clients": "clients des comptes clients",
    "client_users": "utilisateurs des comptes clients",
    "staff": "personnel du prestataire",
}
# Why an incident was documented without notification (Art. 33(5) asks for the reason).
# Only when no client's data is concerned: a processor tells its controller of *every*
# breach affecting it (Art. 33(2) has no risk threshold; judging the risk is the
# controller's). There is no "unlikely risk" reason on the processor's side.
NOT_NOTIFIED_REASONS = {
    "no_personal_data": "aucune donnée à caractère personnel n'est concernée",
    "false_alarm": "l'incident n'a pas entraîné de violation",
}
# Labels of reasons no longer offered, for the rows written with them.
FORMER_NOT_NOTIFIED_REASONS = {
    "unlikely_risk": "violation jugée peu susceptible d'engendrer un risque (motif retiré : "
    "le sous-traitant notifie toute violation à son client, art. 33(2))",
}
# Why a controller does not tell its callers (Art. 34(1), 34(3)): its own decision.
SUBJECTS_REASONS = {
    "no_high_risk": "pas de risque élevé pour les personnes (art. 34(1))",
    "encrypted": "données chiffrées et inintelligibles (art. 34(3)(a))",
    "risk_removed": "mesures ultérieures écartant le risque élevé (art. 34(3)(b))",
    "disproportionate": "effort disproportionné : communication publique (art. 34(3)(c))",
}
CONTENT_FIELDS = (
    "nature",
    "data_categories",
    "subject_categories",
    "approx_subjects",
    "approx_records",
    "contact_point",
    "consequences",
    "measures",
)
_TEXT_FIELDS = ("nature", "contact_point", "consequences", "measures")
_REQUIRED_LABELS = {
    "nature": "(a) nature of the breach",
    "data_categories": "(a) categories of personal data",
    "subject_categories": "(a) categories of data subjects",
    "approx_subjects": "(a) approximate number of data subjects",
    "approx_records": "(a) approximate number of records",
    "contact_point": "(b) contact point",
    "consequences": "(c) likely consequences",
    "measures": "(d) measures taken or proposed",
}
DESK_ROLES = frozenset({Role.DPO, Role.ADMIN, Role.SYSTEM})
# What a controller learns from the register, in French (no codes in what people read).
STATUS_FR = {"open": "ouverte", "closed": "close"}
DECISION_FR = {
    "pending": "pas encore notifiée aux clients",
    "notify": "notifiée aux clients concernés (art. 33(2))",
    "not_notified": "documentée sans notification",
}
SUBJECTS_DECISION_FR = {
    "pending": "décision du client attendue",
    "communicate": "le client informe les personnes concernées",
    "not_required": "le client n'informe pas les personnes",
}
CLOCK_STATE_FR = {
    "running": "en cours",
    "overdue": "dépassée",
    "met": "respectée",
    "met_late": "respectée en retard",
}
# Audit actions that show an account's personal data without naming one caller: a list view,
# an export, a lookup. Each maps to the detail holding how many records it showed.
BULK_ACTIONS = {
    "agenda.viewed": "events",
    "agenda.feed_read": "events",
    "account.export": "records",
    "subject.lookup": "found",
}
# pg_advisory_xact_lock key taken while numbering a new breach ("permbrch").
REFERENCE_LOCK_KEY = int.from_bytes(b"permbrch", "big") >> 1


class BreachRefused(ValidationFailed):
    """A refusal of the register. ``key`` names it for the desk pages, which say it in the
    reader's language; the message stays English for the API, the command line and the logs.
    ``field`` names the field concerned, ``types`` the kinds of personal data found (never the
    data itself), ``fields`` the Art. 33(3) contents still missing."""

    def __init__(
        self,
        key: str,
        message: str,
        *,
        problems: list[str] | None = None,
        field: str = "",
        types: Sequence[str] = (),
        fields: Sequence[str] = (),
    ) -> None:
        super().__init__(message, problems)
        self.key, self.field = key, field
        self.types, self.fields = list(types), list(fields)


class BreachConflict(Conflict):
    """The breach's state forbids the action (closed, already notified…); ``key`` as above."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _require_desk(session: Session) -> uuid.UUID | None:
    ctx = ctx_of(session)
    if ctx.role not in DESK_ROLES:
        raise PermissionDenied("the breach register is kept by the DPO")
    return ctx.actor_id


def _screen(name: str, value: str) -> str:
    """Free text of the register must not carry personal data (e-mail allowed as contact)."""
    value = value.strip()
    kinds = STRUCTURED_TYPES - ({"EMAIL"} if name == "contact_point" else set())
    found = detect(value, kinds)
    if found:
        types = sorted({e.type for e in found})
        raise BreachRefused(
            "personal_data",
            f"{name} contains personal data ({', '.join(types)}): describe, do not quote",
            field=name,
            types=types,
        )
    return value


def _codes(name: str, values: Iterable[str], allowed: dict[str, str]) -> str:
    codes = sorted(set(values))
    unknown = [c for c in codes if c not in allowed]
    if unknown:
        raise BreachRefused(
            "unknown_code",
            f"unknown {name}: {', '.join(unknown)}; known: {', '.join(sorted(allowed))}",
        )
    return json.dumps(codes)


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None:
        raise BreachRefused("no_time_zone", f"{name} needs a time zone", field=name)
    return value.astimezone(dt.UTC)


def _impacts(session: Session, breach: Breach) -> dict[uuid.UUID, BreachAccount]:
    """The affected accounts (each read under its own account: row-level security)."""
    out: dict[uuid.UUID, BreachAccount] = {}
    for account_id in session.scalars(select(Account.id)):
        with acting_for(session, account_id):
            row = session.scalars(
                select(BreachAccount).where(
                    BreachAccount.breach_id == breach.id,
                    BreachAccount.account_id == account_id,
                )
            ).first()
        if row is not None:
            out[account_id] = row
    return out


_FIELD_FR = {
    "nature": "nature de la violation",
    "data_categories": "catégories de données",
    "subject_categories": "catégories de personnes",
    "approx_subjects": "nombre approximatif de personnes",
    "approx_records": "nombre approximatif d'enregistrements",
    "contact_point": "point de contact",
    "consequences": "conséquences probables",
    "measures": "mesures prises ou envisagées",
    "occurred_from": "début de l'incident",
    "occurred_to": "fin de l'incident",
    "unintelligible": "caractère inintelligible des données (art. 34(3)(a))",
}
