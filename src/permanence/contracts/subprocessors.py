"""The sub-processor register (Art. 28(2)/(4)): the entries in place before any client signed,
the changes announced to every active client, the objections, the changes applied once their
window closed. Re-exported by ``service``, the feature's one entry."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account, AccountStatus
from permanence.accounts.service import mandate_version
from permanence.audit import service as audit
from permanence.context import Role
from permanence.contracts.base import _desk
from permanence.contracts.model import SubProcessor, SubProcessorChange, SubProcessorNotice
from permanence.db import acting_for, ctx_of, utcnow
from permanence.errors import Conflict, NotFound, ValidationFailed
from permanence.mail import Mail, Mailer
from permanence.mandates.schema import Safeguard
from permanence.render import paris
from permanence.staff.model import User

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
OBJECTION_REASONS = ("location", "safeguards", "service", "other")


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

    ``host``: the endpoint a configured service uses it through (contracts/configured.py)."""
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
