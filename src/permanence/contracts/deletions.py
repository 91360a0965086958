"""Sub-processors' deletion confirmations at off-boarding (Art. 28(3)(g) and 28(4); SCC
clause 7.7(d) flowing down the return-or-delete duty of clause 10(d)).

When an account is off-boarded (``offboarding.destroy_account``) each active sub-processor is
asked to confirm it deleted the account's data: one ``SubProcessorDeletion`` row per
sub-processor, "requested". The DPO records each confirmation as it arrives, with the
sub-processor's own date and the evidence (the reference of its written statement, ticket or
certificate; the SHA-256 of the document when one is kept). The off-boarding is complete only
when every row is confirmed; a confirmation still missing ``CONFIRMATION_DAYS`` after the
request fails the compliance check ``offboarding.subprocessors``.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.context import Role
from permanence.contracts.model import SubProcessor, SubProcessorDeletion
from permanence.db import ctx_of, utcnow
from permanence.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from permanence.render import PARIS

# The sub-processor's confirmation is due within this many days of the request.
CONFIRMATION_DAYS = 30
MAX_EVIDENCE = 300
_SHA256 = re.compile(r"[0-9a-f]{64}")
RECORDERS = frozenset({Role.DPO, Role.ADMIN, Role.SYSTEM})


def request_confirmations(session: Session, account_id: uuid.UUID, now: dt.datetime) -> int:
    """Ask every active sub-processor to confirm the deletion of ``account_id``'s data (at
    off-boarding, before the account's rows go). Returns how many were asked."""
    asked = session.scalars(
        select(SubProcessorDeletion.subprocessor_id).where(
            SubProcessorDeletion.account_id == account_id
        )
    ).all()
    n = 0
    for sp in session.scalars(
        select(SubProcessor).where(SubProcessor.status == "active").order_by(SubProcessor.code)
    ):
        if sp.id in asked:
            continue
        session.add(
            SubProcessorDeletion(account_id=account_id, subprocessor_id=sp.id, requested_at=now)
        )
        n += 1
    session.flush()
    return n


@dataclass(frozen=True)
class DeletionLine:
    code: str
    name: str
    service: str
    requested_at: dt.datetime
    confirmed_on: dt.date | None
    evidence: str | None
    evidence_sha256: str | None

    @property
    def confirmed(self) -> bool:
        return self.confirmed_on is not None

    def overdue(self, now: dt.datetime) -> bool:
        return not self.confirmed and now - self.requested_at > dt.timedelta(CONFIRMATION_DAYS)

    def state_fr(self) -> str:
        if self.confirmed_on is None:
            asked = self.requested_at.astimezone(PARIS).strftime("%d/%m/%Y")
            return f"demandée le {asked}, non confirmée"
        return f"confirmée le {self.confirmed_on.strftime('%d/%m/%Y')} ({self.evidence})"


@dataclass(frozen=True)
class OffboardingState:
    lines: list[DeletionLine]

    @property
    def complete(self) -> bool:
        return all(line.confirmed for line in self.lines)

    @property
    def missing(self) -> list[str]:
        return [line.code for line in self.lines if not line.confirmed]


def state_of(session: Session, account_id: uuid.UUID) -> OffboardingState:
    """Each sub-processor's confirmation for the (off-boarded) account, by code."""
    rows = session.execute(
        select(SubProcessorDeletion, SubProcessor)
        .join(SubProcessor, SubProcessor.id == SubProcessorDeletion.subprocessor_id)
        .where(SubProcessorDeletion.account_id == account_id)
        .order_by(SubProcessor.code)
    ).all()
    return OffboardingState(
        [
            DeletionLine(
                sp.code,
                sp.name,
                sp.service,
                d.requested_at,
                d.confirmed_on,
                d.evidence,
                d.evidence_sha256,
            )
            for d, sp in rows
        ]
    )


def confirm_deletion(
    session: Session,
    account_id: uuid.UUID,
    subprocessor_code: str,
    *,
    confirmed_on: dt.date,
    evidence: str,
    evidence_sha256: str | None = None,
    now: dt.datetime | None = None,
) -> DeletionLine:
    """Record a sub-processor's confirmation that it deleted the account's data."""
    ctx = ctx_of(session)
    if ctx.role not in RECORDERS:
        raise PermissionDenied("deletion confirmations are recorded by the DPO or an administrator")
    now = now or utcnow()
    problems = []
    evidence = evidence.strip()
    if not evidence:
        problems.append("evidence: give the reference of the sub-processor's confirmation")
    elif len(evidence) > MAX_EVIDENCE:
        problems.append(f"evidence: at most {MAX_EVIDENCE} characters")
    if evidence_sha256 is not None and not _SHA256.fullmatch(evidence_sha256):
        problems.append("evidence_sha256: 64 lower-case hexadecimal digits")
    if confirmed_on > now.astimezone(PARIS).date():
        problems.append("date: a confirmation cannot be dated in the future")
    if problems:
        raise ValidationFailed("the confirmation is not complete", problems)
    sp = session.scalars(select(SubProcessor).where(SubProcessor.code == subprocessor_code)).first()
    row = (
        session.scalars(
            select(SubProcessorDeletion).where(
                SubProcessorDeletion.account_id == account_id,
                SubProcessorDeletion.subprocessor_id == sp.id,
            )
        ).first()
        if sp is not None
        else None
    )
    if sp is None or row is None:
        raise NotFound("this sub-processor was not asked to delete this account's data")
    if row.confirmed_on is not None:
        raise Conflict("this sub-processor's confirmation is already recorded")
    if confirmed_on < row.requested_at.astimezone(PARIS).date():
        raise ValidationFailed("date: the confirmation cannot come before it was asked for")
    row.confirmed_on, row.evidence, row.evidence_sha256 = confirmed_on, evidence, evidence_sha256
    row.recorded_at, row.recorded_by = now, ctx.actor_id
    session.flush()
    audit.record(
        session,
        "offboarding.subprocessor_confirmed",
        "subprocessor",
        sp.id,
        details={"account": account_id, "subprocessor": sp.code},
    )
    return DeletionLine(
        sp.code,
        sp.name,
        sp.service,
        row.requested_at,
        row.confirmed_on,
        row.evidence,
        row.evidence_sha256,
    )
