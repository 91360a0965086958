"""DPIA (Art. 35) per account and processing, on the structure of the CNIL PIA method.

Which processings need one (``required``): the CNIL's list of processing operations requiring
a DPIA (délibération n° 2018-327 of 11 October 2018) names health data processed at scale and
the systematic monitoring of employees' activity. Here: an account whose calls carry health
data (the provider processes such data for many practices, so at scale), and an account whose
calls are recorded (recordings are listened to to evaluate the operators' work).

A DPIA is current when its latest validated version assessed the mandate version in force and
was validated within three years (the CNIL asks for a re-examination at least every three
years); ``dpia.current`` (compliance check) fails otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import pydantic
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account
from permanence.accounts.service import handles_health_data, mandate_version
from permanence.audit import service as audit
from permanence.config import Settings
from permanence.context import Role
from permanence.db import ctx_of, utcnow
from permanence.dpia.model import Dpia
from permanence.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from permanence.mandates.mandate import Mandate

PROCESSINGS: dict[str, tuple[str, str]] = {
    "health": (
        "Prise de messages et de rendez-vous comportant des données de santé",
        "données de santé traitées à grande échelle (liste CNIL, délibération n° 2018-327)",
    ),
    "recording": (
        "Enregistrement des appels et évaluation du travail des opérateurs",
        "surveillance systématique de l'activité des salariés (liste CNIL, délibération "
        "n° 2018-327)",
    ),
}
# The three risks of the CNIL PIA method, and its four-level scale.
RISKS: dict[str, str] = {
    "illegitimate_access": "Accès illégitime à des données",
    "unwanted_modification": "Modification non désirée de données",
    "disappearance": "Disparition de données",
}
LEVELS = {1: "négligeable", 2: "limitée", 3: "importante", 4: "maximale"}
REVIEW_EVERY = dt.timedelta(days=3 * 365)
DESK = frozenset({Role.DPO, Role.ADMIN, Role.SYSTEM})
VALIDATORS = frozenset({Role.DPO, Role.SYSTEM})


class Risk(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    code: Literal["illegitimate_access", "unwanted_modification", "disappearance"]
    impacts: str = pydantic.Field(min_length=1, max_length=4000)
    threats: str = pydantic.Field(min_length=1, max_length=4000)
    sources: str = pydantic.Field(min_length=1, max_length=4000)
    measures: str = pydantic.Field(min_length=1, max_length=4000)
    severity: int = pydantic.Field(ge=1, le=4)
    likelihood: int = pydantic.Field(ge=1, le=4)


class Content(pydantic.BaseModel):
    """The CNIL PIA method: 1. context, 2. fundamental principles (necessity and
    proportionality; data subjects' rights), 3. risks, 4. validation (action plan)."""

    model_config = pydantic.ConfigDict(extra="forbid")
    context: str = pydantic.Field(min_length=1, max_length=10000)
    necessity: str = pydantic.Field(min_length=1, max_length=10000)
    rights: str = pydantic.Field(min_length=1, max_length=10000)
    risks: list[Risk]
    action_plan: str = pydantic.Field(min_length=1, max_length=10000)

    @pydantic.field_validator("risks")
    @classmethod
    def _three(cls, risks: list[Risk]) -> list[Risk]:
        if sorted(r.code for r in risks) != sorted(RISKS):
            raise ValueError("assess each of the three risks once")
        return risks


FIELD_FR = {
    "context": "contexte",
    "necessity": "proportionnalité et nécessité",
    "rights": "droits des personnes",
    "action_plan": "plan d'action",
    "impacts": "impacts",
    "threats": "menaces",
    "sources": "sources de risque",
    "measures": "mesures",
    "severity": "gravité",
    "likelihood": "vraisemblance",
}


def parse_content(raw: dict[str, Any]) -> Content:
    try:
        return Content.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = []
        for e in exc.errors():
            where = " ".join(FIELD_FR.get(str(p), str(p)) for p in e["loc"])
            problems.append(f"{where}: {e['msg']}")
        raise ValidationFailed("the DPIA is incomplete (AIPD incomplète)", problems) from exc


def required(account: Account, mandate: Mandate | None) -> list[str]:
    """The processings of this account that need a DPIA."""
    out = []
    if handles_health_data(account, mandate):
        out.append("health")
    if mandate is not None and mandate.recording.enabled:
        out.append("recording")
    return out


def draft_content(settings: Settings, mandate: Mandate, processing: str) -> Content:
    """A first version from what the product knows: the mandate and the deployment."""
    from permanence.contracts.scc_annexes import _description, security_measures_fr

    described = "\n".join(f"{k} : {v}" for k, v in _description(mandate))
    measures = "\n".join(
        f"{h} : {' ; '.join(items)}" for h, items in security_measures_fr(settings)
    )
    severity = 3 if processing == "health" else 2
    rights = (
        "Information des appelants : premier niveau lu en début d'appel, notice complète "
        f"(version {mandate.notice.version}). Exercice des droits : "
        f"{mandate.controller.rights_contact}. Sous-traitance : contrat sur les clauses "
        "contractuelles types (décision (UE) "
        "2021/915), sous-traitants ultérieurs à l'annexe IV."
    )
    if processing == "recording":
        rights += (
            " Enregistrement annoncé avant l'appel, opposition possible pendant l'appel ; "
            "personnel informé de l'écoute et de ses finalités."
        )
    return Content(
        context=f"{PROCESSINGS[processing][0]}.\n{described}",
        necessity=(
            "Finalités déterminées par le mandat du client ; champs limités à ceux que chaque "
            "finalité déclare (aucun autre n'est enregistré) ; durées de conservation du mandat "
            "appliquées par la purge automatique."
        ),
        rights=rights,
        risks=[
            Risk(
                code=code,
                impacts="atteinte au secret médical, discrimination, perte de confiance"
                if processing == "health"
                else "pression sur les opérateurs, atteinte à la vie privée des appelants",
                threats="compte d'opérateur compromis, erreur de destinataire, perte du serveur",
                sources="attaquant externe, personnel interne, défaillance matérielle",
                measures=measures,
                severity=severity,
                likelihood=1,
            )
            for code in RISKS
        ],
        action_plan="Revue annuelle des habilitations ; réexamen de l'AIPD à chaque nouvelle "
        "version du mandat.",
    )


def _desk(session: Session, roles: frozenset[Role] = DESK) -> uuid.UUID | None:
    ctx = ctx_of(session)
    if ctx.role not in roles:
        raise PermissionDenied("DPIAs are written and validated by the DPO")
    return ctx.actor_id


def _processing(processing: str) -> str:
    if processing not in PROCESSINGS:
        raise NotFound("no such processing")
    return processing


def save_version(session: Session, processing: str, content: dict[str, Any]) -> Dpia:
    """A new version (a draft until validated) of the context account's DPIA."""
    actor = _desk(session)
    account_id = ctx_of(session).require_account()
    parsed = parse_content(content)
    try:
        row, _m = mandate_version(session, account_id)
    except NotFound as exc:
        raise ValidationFailed("the account has no mandate: the DPIA assesses it") from exc
    latest = session.scalar(
        select(func.max(Dpia.version)).where(
            Dpia.account_id == account_id, Dpia.processing == _processing(processing)
        )
    )
    dpia = Dpia(
        account_id=account_id,
        processing=processing,
        version=(latest or 0) + 1,
        mandate_version=row.version,
        content=parsed.model_dump_json(),
        created_by=actor,
    )
    session.add(dpia)
    session.flush()
    audit.record(
        session,
        "dpia.save",
        "dpia",
        dpia.id,
        details={"processing": processing, "version": dpia.version},
    )
    return dpia


def _dpia(session: Session, dpia_id: uuid.UUID) -> Dpia:
    dpia = session.get(Dpia, dpia_id)
    if dpia is None or dpia.account_id != ctx_of(session).account_id:
        raise NotFound("no such DPIA")
    return dpia


def validate(
    session: Session, dpia_id: uuid.UUID, opinion: str, *, now: dt.datetime | None = None
) -> Dpia:
    """The DPO validates a version with their opinion (Art. 35(2): the DPO's advice)."""
    actor = _desk(session, VALIDATORS)
    dpia = _dpia(session, dpia_id)
    if dpia.validated_at is not None:
        raise Conflict("this DPIA version is already validated")
    if not opinion.strip():
        raise ValidationFailed("the DPO's opinion is required to validate (avis du DPO)")
    dpia.validated_at, dpia.validated_by = now or utcnow(), actor
    dpia.dpo_opinion = opinion.strip()[:4000]
    audit.record(
        session,
        "dpia.validate",
        "dpia",
        dpia.id,
        details={"processing": dpia.processing, "version": dpia.version},
    )
    return dpia


def record_client_opinion(session: Session, dpia_id: uuid.UUID, opinion: str) -> Dpia:
    """The client (the controller) gives its opinion on a validated version."""
    if ctx_of(session).role is not Role.CLIENT:
        raise PermissionDenied("the client's opinion is given by the client")
    dpia = _dpia(session, dpia_id)
    if dpia.validated_at is None:
        raise Conflict("this DPIA version is not validated yet")
    if not opinion.strip():
        raise ValidationFailed("write your opinion (votre avis)")
    dpia.client_opinion, dpia.client_opinion_at = opinion.strip()[:4000], utcnow()
    audit.record(
        session,
        "dpia.client_opinion",
        "dpia",
        dpia.id,
        details={"processing": dpia.processing, "version": dpia.version},
    )
    return dpia


def versions(session: Session, processing: str | None = None) -> list[Dpia]:
    account_id = ctx_of(session).require_account()
    q = select(Dpia).where(Dpia.account_id == account_id)
    if processing is not None:
        q = q.where(Dpia.processing == _processing(processing))
    return list(session.scalars(q.order_by(Dpia.processing, Dpia.version.desc())))


def content_of(dpia: Dpia) -> Content:
    return Content.model_validate(json.loads(dpia.content))


@dataclass(frozen=True)
class DpiaStatus:
    processing: str
    why_fr: str
    latest: Dpia | None  # the latest version, validated or not
    validated: Dpia | None  # the latest validated version
    problem: str | None  # None when current

    @property
    def title_fr(self) -> str:
        return PROCESSINGS[self.processing][0]


def status(
    session: Session, account: Account, mandate: Mandate | None, current_mandate: int | None,
    now: dt.datetime,
) -> list[DpiaStatus]:  # fmt: skip
    """Each processing of the context account that needs a DPIA, and whether it has one."""
    out = []
    by_processing: dict[str, list[Dpia]] = {}
    for d in versions(session):
        by_processing.setdefault(d.processing, []).append(d)
    for processing in required(account, mandate):
        rows = by_processing.get(processing, [])
        latest = rows[0] if rows else None
        validated = next((d for d in rows if d.validated_at is not None), None)
        problem = None
        if validated is None or validated.validated_at is None:
            problem = "no validated DPIA"
        elif current_mandate is not None and validated.mandate_version < current_mandate:
            problem = (
                f"outdated: assessed mandate v{validated.mandate_version}, "
                f"v{current_mandate} in force"
            )
        elif validated.validated_at + REVIEW_EVERY < now:
            problem = "outdated: validated more than three years ago"
        out.append(DpiaStatus(processing, PROCESSINGS[processing][1], latest, validated, problem))
    return out


def account_status(session: Session, now: dt.datetime | None = None) -> list[DpiaStatus]:
    account_id = ctx_of(session).require_account()
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound("no such account")
    try:
        row, mandate = mandate_version(session, account_id)
        current: int | None = row.version
        found: Mandate | None = mandate
    except NotFound:
        current, found = None, None
    return status(session, account, found, current, now or utcnow())
