"""The French words of the access report (docs/rights.md): legal bases, categories, retention,
the subject's rights, states rather than codes, dates and durations.

The categories of data and the durations are the mandate's words (``mandates.wording``), the same
as in the records of processing; the legal bases are said to the caller (« votre consentement »)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from permanence.mandates.base import LegalBasis, RetentionKind
from permanence.mandates.durations import IsoDuration
from permanence.mandates.wording import duration_fr as mandate_duration_fr
from permanence.render import PARIS
from permanence.stats.usage import MONTHS_FR

SOURCE_FR = "vous-même, lors de vos appels"

BASIS_FR = {
    LegalBasis.CONSENT: "votre consentement (article 6(1)(a) du RGPD)",
    LegalBasis.CONTRACT: "un contrat ou des mesures précontractuelles (article 6(1)(b))",
    LegalBasis.LEGAL_OBLIGATION: "une obligation légale (article 6(1)(c))",
    LegalBasis.VITAL_INTERESTS: "la sauvegarde d'intérêts vitaux (article 6(1)(d))",
    LegalBasis.PUBLIC_TASK: "une mission d'intérêt public (article 6(1)(e))",
    LegalBasis.LEGITIMATE_INTEREST: "l'intérêt légitime du responsable (article 6(1)(f))",
}
RETENTION_FR = {
    RetentionKind.MESSAGE: "messages",
    RetentionKind.APPOINTMENT: "rendez-vous",
    RetentionKind.CALL_LOG: "journal des appels",
    RetentionKind.CONSENT: "preuves de consentement",
    RetentionKind.RECORDING: "enregistrements",
}
RIGHTS_FR = [
    "accès à vos données (article 15)",
    "rectification (article 16)",
    "effacement (article 17)",
    "limitation du traitement (article 18)",
    "portabilité (article 20)",
    "opposition (article 21)",
    "retrait du consentement à tout moment, sans effet sur les traitements antérieurs",
]
CHANNEL_FR = {
    "portal": "espace client du responsable",
    "email": "courriel",
    "webhook": "système informatique du responsable",
    "escalation_email": "personne d'astreinte (courriel)",
    "escalation_sms": "personne d'astreinte (SMS)",
    "notice_sms": "vous-même (notice d'information, SMS)",
}


def duration_fr(d: IsoDuration | None) -> str:
    """A retention period in words, as the records of processing say it; a kind the mandate
    does not keep says so."""
    return "non conservé" if d is None else mandate_duration_fr(d)


# The report speaks French (docs/rights.md): states, not codes.
STATUS_FR: dict[str, dict[str, str]] = {
    "call": {
        "ringing": "en cours",
        "in-progress": "en cours",
        "completed": "terminé",
        "busy": "occupé",
        "failed": "échoué",
        "no-answer": "sans réponse",
        "canceled": "annulé",
        "expired": "terminé (fin non reçue)",
    },
    "message": {
        "new": "nouveau",
        "acknowledged": "pris en compte",
    },
    "appointment": {"booked": "réservé", "cancelled": "annulé", "done": "honoré"},
    "recording": {
        "off": "non",
        "offered": "proposé",
        "objected": "refusé par vous",
        "recording": "en cours",
        "stored": "conservé",
        "deleted": "supprimé",
    },
    "request": {
        "received": "reçue",
        "verifying": "vérification en cours",
        "waiting_info": "en attente d'informations",
        "verified": "vérifiée",
        "completed": "terminée",
        "refused": "refusée",
        "cancelled": "annulée",
    },
}


KIND_FR = {
    "access": "accès",
    "portability": "portabilité",
    "rectification": "rectification",
    "erasure": "effacement",
    "restriction": "limitation",
    "objection": "opposition",
}


def status_fr(kind: str, code: str | None) -> str:
    if not code:
        return "—"
    return STATUS_FR.get(kind, {}).get(code, code)


def date_fr(value: str | dt.datetime | None, with_time: bool = True) -> str:
    """An ISO date-time (UTC) as French words in Paris time: "6 décembre 2026 à 09 h 21"."""
    if not value:
        return "—"
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    local = when.astimezone(PARIS)
    day = f"{local.day} {MONTHS_FR[local.month - 1]} {local.year}"
    return f"{day} à {local:%H} h {local:%M}" if with_time else day


def call_seconds(call: Any) -> int | None:
    """The call's length: the provider's figure, or from when it was answered (else started)
    to when it ended."""
    if call.duration_s is not None:
        return int(call.duration_s)
    start = call.answered_at or call.started_at
    if start is None or call.ended_at is None:
        return None
    return max(0, int((call.ended_at - start).total_seconds()))


def duration_text(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _field_labels(recs: Any, mandate_of: Any) -> dict[str, dict[str, str]]:
    """For each message and appointment (by id): field name -> the mandate's French label,
    and "" -> the purpose's French label."""
    out: dict[str, dict[str, str]] = {}
    for rec in [*recs.messages, *recs.appointments]:
        try:
            purpose = mandate_of(rec.mandate_id).purpose(rec.purpose)
        except LookupError:
            continue
        labels = {f.name: f.display_label_fr for f in purpose.resolved_fields}
        labels[""] = purpose.label_fr
        out[str(rec.id)] = labels
    return out
