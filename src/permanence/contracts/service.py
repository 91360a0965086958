"""Processor contracts (Art. 28(3)) and the sub-processor registry (Art. 28(2)/(4)).

Contracts are account-owned: these use cases act for the account of the session's context
(the desk opens one per account, or uses ``db.acting_for``). Sub-processor changes are
announced to every active client, which may object until the change takes effect.

The contracts are here; the register and its changes in ``subprocessors``, re-exported: this
module is the feature's one entry for its callers.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from permanence.accounts.service import mandate_version
from permanence.audit import service as audit
from permanence.contracts.base import STAFF_DESK, _desk
from permanence.contracts.model import Contract
from permanence.contracts.subprocessors import (
    EEA,
    OBJECTION_REASONS,
    OBJECTION_WINDOW,
    AnnouncedChange,
    AppliedChange,
    announce_removal,
    apply_due_changes,
    changes_for_account,
    controller_recipients,
    object_to_change,
    propose_subprocessor,
    register_initial,
    registry,
)
from permanence.db import ctx_of, utcnow
from permanence.errors import Conflict, NotFound, ValidationFailed

__all__ = [
    "CLAUSES",
    "EEA",
    "OBJECTION_REASONS",
    "OBJECTION_WINDOW",
    "STAFF_DESK",
    "AnnouncedChange",
    "AppliedChange",
    "ClauseStatus",
    "ContractStatus",
    "announce_removal",
    "apply_due_changes",
    "changes_for_account",
    "contract_in_force",
    "contract_status",
    "controller_recipients",
    "missing_clauses",
    "object_to_change",
    "propose_subprocessor",
    "record_contract",
    "register_initial",
    "registry",
    "sign_contract",
    "terminate_contract",
]

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
