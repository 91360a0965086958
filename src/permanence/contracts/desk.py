"""What the DPO's contracts page reads (``/dpo/contrats``): for each client account its
contract versions and their state, the signed document and its hash, what is missing, the
changes of sub-processors held by an objection (clause 7.7) and, once off-boarded, each
sub-processor's deletion confirmation; and the sub-processor register with the flow-down
state of each entry (Art. 28(4)).

Missing items are codes (the page words them in the viewer's language); nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account, AccountStatus
from permanence.contracts import deletions
from permanence.contracts.flowdown import _flowdowns, held_changes
from permanence.contracts.model import Contract, ContractDocument, SubProcessor
from permanence.contracts.scc import document_of, document_problems, signatories_of
from permanence.contracts.scc_document import TEMPLATE, Signatory
from permanence.contracts.service import CLAUSES, contract_status, registry

# document_problems' wordings (shared with the compliance check) -> the page's codes.
_PROBLEM_CODES = {
    "not generated on the standard contractual clauses (Decision (EU) 2021/915)": "not_scc",
    "no signed document stored": "no_document",
    "the stored document is not a PDF": "not_pdf",
    "the stored PDF does not match its recorded SHA-256": "hash_mismatch",
    "not signed for both parties": "signatories",
    "an Art. 28(3) point is not mapped to a clause": "clause_unmapped",
}


@dataclass(frozen=True)
class VersionView:
    contract: Contract
    state: str  # in_force | signed | terminated | draft
    document: ContractDocument | None
    signatories: list[Signatory]


@dataclass(frozen=True)
class HeldChange:
    code: str
    name: str
    kind: str  # add | remove
    effective_at: dt.datetime


@dataclass(frozen=True)
class AccountContracts:
    account: Account
    in_force: Contract | None
    versions: list[VersionView]
    missing: list[str]  # codes
    held: list[HeldChange] = field(default_factory=list)
    offboarding: deletions.OffboardingState | None = None

    @property
    def scc(self) -> bool:
        return self.in_force is not None and self.in_force.template == TEMPLATE


@dataclass(frozen=True)
class SubProcessorView:
    sub: SubProcessor
    agreement: str | None  # the flow-down agreement's reference
    signed_at: dt.datetime | None
    missing_points: list[str]  # Art. 28(3) letters the agreement does not cover


def accounts(session: Session) -> list[Account]:
    """The client accounts a contract page covers: active and off-boarded (a desk session)."""
    return list(
        session.scalars(
            select(Account)
            .where(Account.status.in_([AccountStatus.ACTIVE, AccountStatus.OFFBOARDED]))
            .order_by(Account.slug)
        )
    )


def account_contracts(session: Session, account: Account) -> AccountContracts:
    """One account's contracts (the session is that account's)."""
    status = contract_status(session)
    versions = []
    for c in reversed(status.versions):
        if status.contract is not None and status.contract.id == c.id:
            state = "in_force"
        elif c.terminated_at is not None:
            state = "terminated"
        elif c.signed_at is not None:
            state = "signed"
        else:
            state = "draft"
        doc = document_of(session, c.id)
        versions.append(VersionView(c, state, doc, signatories_of(doc) if doc else []))
    missing: list[str] = []
    offboarded = account.status == AccountStatus.OFFBOARDED
    confirmations = deletions.state_of(session, account.id) if offboarded else None
    if status.contract is None and not offboarded:
        missing.append("no_contract")
    elif status.contract is not None:
        doc = document_of(session, status.contract.id)
        missing += [_PROBLEM_CODES.get(p, p) for p in document_problems(status.contract, doc)]
    held = [
        HeldChange(sp.code, sp.name, change.kind, change.effective_at)
        for change, sp in held_changes(session)
    ]
    if held:
        missing.append("held_change")
    if confirmations is not None and not confirmations.complete:
        missing.append("deletion_awaited")
    return AccountContracts(account, status.contract, versions, missing, held, confirmations)


def subprocessors(session: Session) -> list[SubProcessorView]:
    """The register (removed entries included) with each entry's flow-down agreement."""
    flows = _flowdowns(session)
    out = []
    for sp in registry(session, include_removed=True):
        flow = flows.get(sp.id)
        missing = sorted(set(CLAUSES) - set(json.loads(flow.covers))) if flow else list(CLAUSES)
        out.append(
            SubProcessorView(
                sp,
                flow.reference if flow else None,
                flow.signed_at if flow else None,
                missing,
            )
        )
    return out


def clauses_of(contract: Contract) -> dict[str, str]:
    """Where the contract covers each Art. 28(3) point (letter -> clause reference)."""
    covered = json.loads(contract.clauses or "{}")
    return {k: str(v) for k, v in covered.items() if v}
