"""Who consulted the person's data, when and why (Art. 15(1); CJEU C-579/21 Pankki S), from
the audit log, for the access report.

Each entry the audit log holds about the subject and made by a person or an API key (the
system's own automatic work is not a consultation) is listed with its date, the operation in
French, who acted **by role** (never by name) and the purpose. C-579/21 holds that the log of
consultations is part of the copy the person is owed, and that the identity of the employees
who acted under the controller's authority is not, unless it is indispensable to exercise
their rights (ADR 0031): the role and the organisation are given, and the DPO may name the
person on a reasoned request. The requests themselves are listed elsewhere in the report
("Vos demandes"), so ``rights.*`` entries are left out.

The audit log is pruned after 12 months behind a signed checkpoint: the list covers what it
still holds, and says so.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.audit.model import AuditEntry

MAX_ENTRIES = 2000  # a person's consultations over the log's 12 months, far above any real one

# The operation, from the end of the action code.
_READ = frozenset(
    {"read", "open", "lookup", "history_read", "notice_read", "answer", "answered", "viewed"}
)
_LISTEN = frozenset({"listen"})
_EXPORT = frozenset({"export"})
_DELETE = frozenset({"delete", "discard", "erase", "provider_delete"})

ROLE_FR = {
    "operator": "un opérateur de la permanence téléphonique (sous-traitant)",
    "supervisor": "un superviseur de la permanence téléphonique (sous-traitant)",
    "dpo": "le délégué à la protection des données de la permanence téléphonique",
    "admin": "un administrateur de la permanence téléphonique (sous-traitant)",
    "client": "un utilisateur du responsable du traitement",
}
API_KEY_FR = "le système informatique du responsable du traitement (clé d'API)"

PURPOSE_FR = {
    "call": "prise en charge de votre appel",
    "message": "transmission de votre message au responsable du traitement",
    "appointment": "gestion de vos rendez-vous",
    "recording": "gestion de l'enregistrement de votre appel",
    "subject": "identification de l'appelant et tenue de sa fiche",
    "consent": "preuve de votre consentement",
    "voicemail": "traitement de votre message vocal",
    "delivery": "transmission de votre message au responsable du traitement",
    "access": "accès exceptionnel motivé (bris de glace) à des données de santé",
    "breach": "gestion d'un incident de sécurité",
}
_DPO_PURPOSE = "contrôle de conformité par le délégué à la protection des données"


@dataclass(frozen=True)
class Consultation:
    at: dt.datetime
    operation: str  # French
    by: str  # French: a role and its organisation, never a name
    purpose: str  # French

    def json(self) -> dict[str, str]:
        return {
            "le": self.at.isoformat(),
            "operation": self.operation,
            "par": self.by,
            "finalite": self.purpose,
        }


def _operation(action: str) -> str:
    verb = action.split(".", 1)[1] if "." in action else action
    if verb in _LISTEN:
        return "écoute"
    if verb in _EXPORT:
        return "export"
    if verb in _DELETE:
        return "suppression"
    if verb in _READ or verb.endswith("_read"):
        return "consultation"
    return "enregistrement ou modification"


def _purpose(action: str, reason: str) -> str:
    if reason.startswith(("dpo:", "compliance:")):
        return _DPO_PURPOSE
    return PURPOSE_FR.get(action.split(".", 1)[0], "fonctionnement du service de permanence")


def _handling_a_request(action: str, body: dict[str, object]) -> bool:
    """The steps of a rights request (listed with the requests, not as consultations)."""
    details = body.get("details")
    return (
        action.startswith("rights.")
        or "rights" in str(body.get("reason") or "")
        or (isinstance(details, dict) and details.get("for") == "dsr")
    )


def consultations_of(session: Session, subject_id: uuid.UUID) -> list[Consultation]:
    """The subject's consultations, oldest first (the session is the account's)."""
    entries: list[AuditEntry] = []
    before: int | None = None
    while len(entries) < MAX_ENTRIES:
        page = audit.search(session, subject_id=subject_id, before_seq=before, limit=500)
        if not page:
            break
        entries += page
        before = page[-1].seq
    out: list[Consultation] = []
    for e in sorted(entries, key=lambda e: (e.ts, e.seq)):
        body = json.loads(e.body)
        if _handling_a_request(e.action, body):
            continue
        kind = body.get("actor_kind")
        if kind == "api_key":
            by = API_KEY_FR
        elif kind == "user":
            by = ROLE_FR.get(str(body.get("role")), "un membre du personnel")
        else:
            continue  # the system's own work: not a consultation
        out.append(
            Consultation(e.ts, _operation(e.action), by, _purpose(e.action, body.get("reason", "")))
        )
    return out
