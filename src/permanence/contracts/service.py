"""Processor contracts (Art. 28(3)) and the sub-processor registry (Art. 28(2)/(4)).

Contracts are account-owned: these use cases act for the account of the session's context
(the desk opens one per account, or uses ``db.acting_for``). Sub-processor changes are
announced to every active client, which may object until the change takes effect.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account, AccountStatus
from permanence.accounts.service import mandate_version
from permanence.audit import service as audit
from permanence.context import Role
from permanence.contracts.model import (
    Contract,
    SubProcessor,
    SubProcessorChange,
    SubProcessorNotice,
)
from permanence.db import acting_for, ctx_of, utcnow
from permanence.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from permanence.mail import Mail, Mailer
from permanence.mandates.schema import Safeguard
from permanence.render import paris
from permanence.staff.model import User

# Art. 28(3) (a)-(h): what each clause obliges the processor to do.
CLAUSES: Mapping[str, str] = {
    "a": "acts only on documented instructions (the mandate), and says so if one is unlawful",
    "b": "persons authorised to process the data are bound to confidentiality",
    "c": "takes the security measures of Art. 32",
    "d": "engages sub-processors only as Art. 28(2) and (4) allow",
    "e": "assists the controller with data subjects' requests",
    "f": "assists the controller with Art. 32-36 (security, breaches, DPIA)",
    "g": "deletes or returns all the data at the end of the service",
    "h": "makes available what proves compliance and allows audits",
}
OBJECTION_WINDOW = dt.timedelta(days=30)
EEA = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "IS",
        "LI",
        "NO",
    ]
)
STAFF_DESK = frozenset({Role.DPO, Role.ADMIN, Role.SYSTEM})
OBJECTION_REASONS = ("location", "safeguards", "service", "other")


def _desk(session: Session) -> uuid.UUID | None:
    ctx = ctx_of(session)
    if ctx.role not in STAFF_DESK:
        raise PermissionDenied("contracts and sub-processors are managed by the DPO")
    return ctx.actor_id


# -- contracts ----------------------------------------------------------------------------


def record_contract(
    session: Session,
    *,
    reference: str,
    clauses: Mapping[str, str],
    effective_from: dt.datetime,
    ends_at: dt.datetime | None = None,
) -> Contract:
    """A new (unsigned) version of the context account's contract.

    ``clauses`` maps clause letters to the section of the contract covering each.
    """
    actor = _desk(session)
    account_id = ctx_of(session).require_account()
    unknown = sorted(set(clauses) - set(CLAUSES))
    if unknown:
        raise ValidationFailed(f"unknown Art. 28(3) clause(s): {', '.join(unknown)} (a-h)")
    if not reference.strip():
        raise ValidationFailed("the contract needs a reference")
    if effective_from.tzinfo is None or (ends_at is not None and ends_at.tzinfo is None):
        raise ValidationFailed("contract dates need a time zone")
    if ends_at is not None and ends_at <= effective_from:
        raise ValidationFailed("the contract must end after it starts")
    try:
        mandate_row, _m = mandate_version(session, account_id)
        mandate_no: int | None = mandate_row.version
    except NotFound:
        mandate_no = None
    latest = session.scalar(
        select(func.max(Contract.version)).where(Contract.account_id == account_id)
    )
    contract = Contract(
        account_id=account_id,
        version=(latest or 0) + 1,
        reference=reference.strip()[:64],
        clauses=json.dumps({k: v.strip() for k, v in sorted(clauses.items()) if v.strip()}),
        mandate_version=mandate_no,
        effective_from=effective_from,
        ends_at=ends_at,
        created_by=actor,
    )
    session.add(contract)
    session.flush()
    audit.record(
        session, "contract.record", "contract", contract.id, details={"version": contract.version}
    )
    return contract


def missing_clauses(contract: Contract) -> list[str]:
    covered = json.loads(contract.clauses)
    return [letter for letter in CLAUSES if not covered.get(letter)]


def sign_contract(
    session: Session, contract_id: uuid.UUID, *, signed_at: dt.datetime | None = None
) -> Contract:
    """Sign a version: every clause (a)-(h) must be covered. The previous version ends."""
    _desk(session)
    contract = _contract(session, contract_id)
    if contract.signed_at is not None:
        raise Conflict("this contract version is already signed")
    missing = missing_clauses(contract)
    if missing:
        raise ValidationFailed(
            "the contract does not cover every Art. 28(3) clause",
            problems=[f"clause ({m}) missing: {CLAUSES[m]}" for m in missing],
        )
    when = signed_at or utcnow()
    contract.signed_at = when
    for older in session.scalars(
        select(Contract).where(
            Contract.account_id == contract.account_id,
            Contract.version < contract.version,
            Contract.signed_at.is_not(None),
            Contract.terminated_at.is_(None),
        )
    ):
        older.terminated_at = when
    session.flush()
    audit.record(
        session, "contract.sign", "contract", contract.id, details={"version": contract.version}
    )
    return contract


def _contract(session: Session, contract_id: uuid.UUID) -> Contract:
    contract = session.get(Contract, contract_id)
    if contract is None or contract.account_id != ctx_of(session).account_id:
        raise NotFound("no such contract")
    return contract


def terminate_contract(session: Session, contract_id: uuid.UUID) -> None:
    _desk(session)
    contract = _contract(session, contract_id)
    contract.terminated_at = utcnow()
    audit.record(session, "contract.terminate", "contract", contract.id)


@dataclass(frozen=True)
class ClauseStatus:
    letter: str
    obligation: str
    section: str | None


@dataclass(frozen=True)
class ContractStatus:
    """What the desk shows for one account: the contract in force and each clause."""

    account_id: uuid.UUID
    contract: Contract | None
    clauses: list[ClauseStatus]
    mandate_version: int | None
    versions: list[Contract]

    @property
    def in_force(self) -> bool:
        return self.contract is not None and all(c.section for c in self.clauses)


def contract_in_force(session: Session, now: dt.datetime | None = None) -> Contract | None:
    """The context account's signed, current contract, if any."""
    account_id = ctx_of(session).require_account()
    when = now or utcnow()
    for c in session.scalars(
        select(Contract)
        .where(
            Contract.account_id == account_id,
            Contract.signed_at.is_not(None),
            Contract.terminated_at.is_(None),
        )
        .order_by(Contract.version.desc())
    ):
        if c.effective_from <= when and (c.ends_at is None or c.ends_at > when):
            return c
    return None


def contract_status(session: Session, now: dt.datetime | None = None) -> ContractStatus:
    account_id = ctx_of(session).require_account()
    contract = contract_in_force(session, now)
    covered = json.loads(contract.clauses) if contract else {}
    try:
        mandate_row, _m = mandate_version(session, account_id)
        current_mandate: int | None = mandate_row.version
    except NotFound:
        current_mandate = None
    versions = list(
        session.scalars(
            select(Contract).where(Contract.account_id == account_id).order_by(Contract.version)
        )
    )
    return ContractStatus(
        account_id,
        contract,
        [ClauseStatus(k, v, covered.get(k)) for k, v in CLAUSES.items()],
        current_mandate,
        versions,
    )


# -- sub-processors -----------------------------------------------------------------------


def _check_location(country: str, safeguard: str) -> tuple[str, str]:
    country = country.strip().upper()
    if len(country) != 2 or not country.isalpha():
        raise ValidationFailed("country must be a two-letter ISO code")
    if country in EEA:
        if safeguard not in {"eea", ""}:
            raise ValidationFailed("a sub-processor in the EEA needs no transfer safeguard")
        return country, "eea"
    allowed = {s.value for s in Safeguard}
    if safeguard not in allowed:
        raise ValidationFailed(
            "a sub-processor outside the EEA needs a transfer safeguard: one of "
            + ", ".join(sorted(allowed))
        )
    return country, safeguard


def registry(session: Session, *, include_removed: bool = False) -> list[SubProcessor]:
    q = select(SubProcessor).order_by(SubProcessor.name)
    if not include_removed:
        q = q.where(SubProcessor.status != "removed")
    return list(session.scalars(q))


def _new_subprocessor(
    session: Session,
    code: str,
    name: str,
    service: str,
    country: str,
    safeguard: str,
    hds_certified: bool,
    *,
    status: str,
    host: str | None = None,
) -> SubProcessor:
    _desk(session)
    country, safeguard = _check_location(country, safeguard)
    if host is not None:
        host = host.strip().lower().strip(".")
        if not host or any(c in host for c in "/:@ ") or "." not in host:
            raise ValidationFailed(
                "host must be a host name or domain such as api.twilio.com (no scheme, no port)"
            )
    if session.scalars(select(SubProcessor.id).where(SubProcessor.code == code)).first():
        raise Conflict(f"sub-processor '{code}' already exists")
    sp = SubProcessor(
        code=code,
        name=name.strip(),
        service=service.strip(),
        country=country,
        safeguard=safeguard,
        hds_certified=hds_certified,
        status=status,
        host=host or None,
    )
    session.add(sp)
    session.flush()
    return sp


def register_initial(
    session: Session,
    *,
    code: str,
    name: str,
    service: str,
    country: str,
    safeguard: str = "eea",
    hds_certified: bool = False,
    host: str | None = None,
) -> SubProcessor:
    """A sub-processor in place before any client signed (authorised by the contract itself).

    ``host``: the endpoint a configured service uses it through (compliance/services.py)."""
    sp = _new_subprocessor(
        session, code, name, service, country, safeguard, hds_certified, status="active", host=host
    )
    audit.record(session, "subprocessor.register", "subprocessor", sp.id, details={"code": code})
    return sp


def _announce(
    session: Session,
    sp: SubProcessor,
    kind: str,
    *,
    mailer: Mailer | None,
    portal_url: str,
    now: dt.datetime,
    window: dt.timedelta,
) -> SubProcessorChange:
    actor = _desk(session)
    if window < dt.timedelta(days=1):
        raise ValidationFailed("the objection window must be at least one day")
    change = SubProcessorChange(
        subprocessor_id=sp.id,
        kind=kind,
        announced_at=now,
        effective_at=now + window,
        created_by=actor,
    )
    session.add(change)
    session.flush()
    verb = "ajout" if kind == "add" else "retrait"
    for account in session.scalars(select(Account).where(Account.status == AccountStatus.ACTIVE)):
        with acting_for(session, account.id):
            recipients = controller_recipients(session, account) if mailer is not None else []
            for to in recipients:
                assert mailer is not None
                mailer.send(
                    Mail(
                        to=to,
                        subject=f"Sous-traitants ultérieurs : {verb} de {sp.name}",
                        text=(
                            f"Bonjour,\n\nConformément à l'article 28(2) du RGPD et à notre "
                            f"contrat, nous vous informons de l'{verb} du sous-traitant ultérieur "
                            f"{sp.name} ({sp.service}, {sp.country}). Ce changement prendra effet "
                            f"le {paris(change.effective_at, '%d/%m/%Y')}. Vous pouvez vous y "
                            f"opposer jusqu'à cette date sur votre portail :\n"
                            f"{portal_url.rstrip('/')}/portail/sous-traitants\n"
                        ),
                    )
                )
            session.add(
                SubProcessorNotice(
                    change_id=change.id,
                    account_id=account.id,
                    notified_at=now,
                    emailed_to=len(recipients),
                )
            )
            session.flush()
    audit.record(
        session,
        f"subprocessor.announce_{kind}",
        "subprocessor",
        sp.id,
        details={"change": change.id},
    )
    return change


def controller_recipients(session: Session, account: Account) -> list[str]:
    """Who is told of governance events: the mandate's controller contact and client users."""
    emails: list[str] = []
    try:
        _row, mandate = mandate_version(session, account.id)
        emails.append(mandate.controller.contact_email)
    except NotFound:
        pass
    emails += list(
        session.scalars(
            select(User.email).where(
                User.account_id == account.id, User.role == Role.CLIENT, User.active.is_(True)
            )
        )
    )
    return sorted({e.lower() for e in emails})


def propose_subprocessor(
    session: Session,
    *,
    code: str,
    name: str,
    service: str,
    country: str,
    safeguard: str = "eea",
    hds_certified: bool = False,
    host: str | None = None,
    mailer: Mailer | None,
    portal_url: str,
    now: dt.datetime | None = None,
    window: dt.timedelta = OBJECTION_WINDOW,
) -> SubProcessorChange:
    """A new sub-processor: every client is told and may object before it takes effect."""
    sp = _new_subprocessor(
        session,
        code,
        name,
        service,
        country,
        safeguard,
        hds_certified,
        status="proposed",
        host=host,
    )
    return _announce(
        session, sp, "add", mailer=mailer, portal_url=portal_url, now=now or utcnow(), window=window
    )


def announce_removal(
    session: Session,
    code: str,
    *,
    mailer: Mailer | None,
    portal_url: str,
    now: dt.datetime | None = None,
    window: dt.timedelta = OBJECTION_WINDOW,
) -> SubProcessorChange:
    sp = session.scalars(select(SubProcessor).where(SubProcessor.code == code)).first()
    if sp is None or sp.status != "active":
        raise NotFound(f"no active sub-processor '{code}'")
    return _announce(
        session,
        sp,
        "remove",
        mailer=mailer,
        portal_url=portal_url,
        now=now or utcnow(),
        window=window,
    )


def object_to_change(
    session: Session, change_id: uuid.UUID, reason: str, *, now: dt.datetime | None = None
) -> SubProcessorNotice:
    """The client (context account) objects to an announced change, before it takes effect."""
    account_id = ctx_of(session).require_account()
    if reason not in OBJECTION_REASONS:
        raise ValidationFailed("reason must be one of " + ", ".join(OBJECTION_REASONS))
    notice = session.scalars(
        select(SubProcessorNotice).where(
            SubProcessorNotice.change_id == change_id, SubProcessorNotice.account_id == account_id
        )
    ).first()
    change = session.get(SubProcessorChange, change_id)
    if notice is None or change is None:
        raise NotFound("no such change")
    when = now or utcnow()
    if when >= change.effective_at:
        raise Conflict("the objection window for this change has closed")
    notice.objected_at, notice.objection_reason = when, reason
    audit.record(
        session, "subprocessor.objection", "subprocessor_change", change.id, details={"why": reason}
    )
    return notice


@dataclass(frozen=True)
class AppliedChange:
    change: SubProcessorChange
    subprocessor: SubProcessor
    objections: int


def apply_due_changes(session: Session, now: dt.datetime | None = None) -> list[AppliedChange]:
    """Changes whose objection window closed take effect for the register; an objecting
    client's change stays held until the DPO resolves its objection (clause 7.7(a) of the
    SCC, contracts/scc.py ``resolve_objection``): ``subprocessors.objections`` fails meanwhile."""
    _desk(session)
    when = now or utcnow()
    applied = []
    for change in session.scalars(
        select(SubProcessorChange)
        .where(SubProcessorChange.applied_at.is_(None), SubProcessorChange.effective_at <= when)
        .order_by(SubProcessorChange.effective_at)
    ):
        sp = session.get(SubProcessor, change.subprocessor_id)
        assert sp is not None
        sp.status = "active" if change.kind == "add" else "removed"
        change.applied_at = when
        objections = 0
        for account_id in session.scalars(select(Account.id)):
            with acting_for(session, account_id):
                objections += (
                    session.scalar(
                        select(func.count())
                        .select_from(SubProcessorNotice)
                        .where(
                            SubProcessorNotice.change_id == change.id,
                            SubProcessorNotice.objected_at.is_not(None),
                        )
                    )
                    or 0
                )
        audit.record(
            session,
            "subprocessor.apply",
            "subprocessor_change",
            change.id,
            details={"objections": objections},
        )
        applied.append(AppliedChange(change, sp, objections))
    session.flush()
    return applied


@dataclass(frozen=True)
class AnnouncedChange:
    """A sub-processor change announced to the context's account, and its objection."""

    notice: SubProcessorNotice
    change: SubProcessorChange
    subprocessor: SubProcessor

    def open_for_objection(self, now: dt.datetime) -> bool:
        return self.notice.objected_at is None and now < self.change.effective_at


def changes_for_account(session: Session) -> list[AnnouncedChange]:
    """The client's portal: changes of sub-processors announced to it, newest first."""
    account_id = ctx_of(session).require_account()
    rows = session.execute(
        select(SubProcessorNotice, SubProcessorChange, SubProcessor)
        .join(SubProcessorChange, SubProcessorChange.id == SubProcessorNotice.change_id)
        .join(SubProcessor, SubProcessor.id == SubProcessorChange.subprocessor_id)
        .where(SubProcessorNotice.account_id == account_id)
        .order_by(SubProcessorChange.announced_at.desc())
    ).all()
    return [AnnouncedChange(n, c, sp) for n, c, sp in rows]
