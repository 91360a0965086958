"""Automated compliance checks: each passes or fails with its evidence (counts and codes, never
personal data), for the DPO desk, the dated report and ``permanence compliance check``.

The checks of the service as a whole live here; the way a check is registered and run is in
``permanence.checks`` (re-exported here), which other features import to register their own
(rights requests, recordings, audits, DPIAs, need-to-know) without importing this package.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account
from permanence.accounts.service import handles_health_data as _handles_health_data
from permanence.accounts.service import mandate_version
from permanence.checks import (
    _REGISTRY,
    CHECK_MODULES,
    CheckFn,
    CheckResult,
    CheckRun,
    RegisteredCheck,
    check,
    registered,
    run_checks,
)
from permanence.context import STAFF_ROLES, AccessContext
from permanence.errors import NotFound
from permanence.mandates.layer2 import first_layer_problems
from permanence.mandates.mandate import Mandate
from permanence.staff.model import User

# The registry's names, re-exported: this module was their home (tests, the CLI, the report).
__all__ = [
    "CHECK_MODULES",
    "_REGISTRY",
    "CheckFn",
    "CheckResult",
    "CheckRun",
    "RegisteredCheck",
    "check",
    "registered",
    "run_checks",
]

# -- the checks ---------------------------------------------------------------------------


@check("staff.training", "Staff trained and bound to confidentiality")
def _training(run: CheckRun) -> tuple[bool, str, list[str]]:
    from permanence.staff.training import missing

    bad = []
    with run.session() as s:
        staff = s.scalars(
            select(User).where(User.role.in_(list(STAFF_ROLES)), User.active.is_(True))
        ).all()
        for u in staff:
            problems = missing(s, u.id, run.now)
            if problems:
                bad.append(f"user {u.id} ({u.role.value}): " + "; ".join(problems))
    if bad:
        return False, f"{len(bad)} of {len(staff)} staff member(s) may not handle data", bad
    return True, f"{len(staff)} staff member(s) trained and bound to confidentiality", []


@check("staff.mfa", "Staff have a second authentication factor")
def _mfa(run: CheckRun) -> tuple[bool, str, list[str]]:
    # Staff receive a TOTP secret when created and must use it (staff.service.create_user);
    # a staff member with neither a secret nor MFA marked enabled signs in with a password only.
    with run.session() as s:
        staff = s.scalars(
            select(User).where(User.role.in_(list(STAFF_ROLES)), User.active.is_(True))
        ).all()
    bad = [
        f"user {u.id} ({u.role.value}) has no TOTP factor"
        for u in staff
        if u.totp_sealed is None and not u.mfa_enabled
    ]
    if bad:
        return False, f"{len(bad)} staff member(s) without MFA", bad
    return True, f"{len(staff)} staff member(s) with MFA", []


@check(
    "contracts.signed",
    "Every active client has a signed Art. 28 contract on the SCC, its signed PDF stored",
)
def _contracts(run: CheckRun) -> tuple[bool, str, list[str]]:
    """The contract in force must be the one generated on Decision (EU) 2021/915, with its
    signed PDF stored whole (SHA-256 recomputed) and signed for both parties: a contract
    recorded as a list of section references proves nothing an inspector can read."""
    from permanence.contracts.scc import document_of, document_problems
    from permanence.contracts.service import contract_in_force

    bad = []
    accounts = run.accounts()
    for a in accounts:
        with run.session(a.id) as s:
            c = contract_in_force(s, run.now)
            if c is None:
                bad.append(f"{a.slug}: no signed contract in force")
                continue
            problems = document_problems(c, document_of(s, c.id))
            if problems:
                bad.append(f"{a.slug}: contract v{c.version}: " + "; ".join(problems))
    if bad:
        return False, f"{len(bad)} account(s) without a signed contract document", bad
    return True, f"{len(accounts)} account(s) under a signed SCC contract, PDF stored", []


@check("subprocessors.flowdown", "Every sub-processor is bound by a flow-down agreement (28(4))")
def _flowdown(run: CheckRun) -> tuple[bool, str, list[str]]:
    from permanence.contracts.flowdown import flowdown_gaps
    from permanence.contracts.service import registry

    with run.session() as s:
        gaps = flowdown_gaps(s)
        n = sum(1 for sp in registry(s) if sp.status == "active")
    if gaps:
        return False, f"{len(gaps)} sub-processor(s) without a complete flow-down agreement", gaps
    return True, f"{n} sub-processor(s), each under a flow-down agreement", []


@check(
    "subprocessors.objections",
    "No sub-processor change in effect for a client whose objection is unresolved (cl. 7.7)",
)
def _objections(run: CheckRun) -> tuple[bool, str, list[str]]:
    """Clause 7.7(a) of the SCC: an objection holds the change for that client. Once the
    change applied, an unresolved objection means that client's data reaches a sub-processor
    it refused: the provider must resolve it (alternative or termination)."""
    from permanence.contracts.flowdown import held_changes

    bad, held = [], 0
    for a in run.accounts():
        with run.session(a.id) as s:
            for change, sp in held_changes(s):
                held += 1
                if change.applied_at is not None:
                    bad.append(
                        f"{a.slug}: objected to the {change.kind} of {sp.code}, in effect "
                        "since " + change.applied_at.date().isoformat() + ", unresolved"
                    )
    if bad:
        return False, f"{len(bad)} objection(s) overridden by a change in effect", bad
    return True, f"{held} objection(s) pending, none overridden", []


def _mandates(run: CheckRun) -> Iterator[tuple[Account, Mandate | None, int | None]]:
    for a in run.accounts():
        with run.session(a.id) as s:
            try:
                row, mandate = mandate_version(s, a.id)
                yield a, mandate, row.version
            except NotFound:
                yield a, None, None


@check(
    "mandates.notice",
    "Every active client has a mandate with a notice version and a complete spoken first layer",
)
def _notice(run: CheckRun) -> tuple[bool, str, list[str]]:
    bad, n = [], 0
    for a, mandate, _v in _mandates(run):
        n += 1
        if mandate is None:
            bad.append(f"{a.slug}: no mandate")
        elif not mandate.notice.version.strip():
            bad.append(f"{a.slug}: the mandate has no notice version")
        elif gaps := first_layer_problems(mandate):
            bad.append(f"{a.slug}: " + "; ".join(gaps))
    if bad:
        return False, f"{len(bad)} account(s) whose notice is missing or incomplete", bad
    return True, f"{n} account(s) with a versioned, complete notice", []


@check("hosting.hds", "Health data only on HDS-certified hosting")
def _hds(run: CheckRun) -> tuple[bool, str, list[str]]:
    bad, health = [], 0
    for a, mandate, _v in _mandates(run):
        if not _handles_health_data(a, mandate):
            continue
        health += 1
        if not run.rt.settings.hds_hosting:
            bad.append(
                f"{a.slug}: health data, but the deployment does not declare HDS hosting "
                "(PERMANENCE_HDS_HOSTING)"
            )
        elif (
            mandate is not None
            and mandate.hosting is not None
            and not (mandate.hosting.hds_certified)
        ):
            bad.append(f"{a.slug}: the mandate's hosting is not declared HDS-certified")
    if bad:
        return False, f"{len(bad)} account(s) with health data outside HDS hosting", bad
    return True, f"{health} account(s) with health data, hosting HDS-certified", []


@check("audit.chain", "The audit chain is intact")
def _audit(run: CheckRun) -> tuple[bool, str, list[str]]:
    from permanence.audit import integrity

    with run.session() as s:
        result = integrity.verify(s, run.rt.keyring.checkpoint_signing_key().public_key())
    return result.ok, result.line(), [] if result.ok else [result.line()]


@check("audit.retention", "No audit entry kept past 12 months (CNIL logging recommendation)")
def _audit_retention(run: CheckRun) -> tuple[bool, str, list[str]]:
    from permanence.audit.retention import DEFAULT_MONTHS, overdue_entries

    with run.session() as s:
        late = overdue_entries(s, run.now, DEFAULT_MONTHS)
    if late:
        return (
            False,
            f"{late} audit entries older than {DEFAULT_MONTHS} months",
            [f"{late} entries: run 'permanence audit prune' as the schema owner"],
        )
    return True, f"no audit entry older than {DEFAULT_MONTHS} months", []


@check("breaches.clocks", "No breach past its notification target")
def _breaches(run: CheckRun) -> tuple[bool, str, list[str]]:
    from permanence.breaches.service import register

    ctx = AccessContext.system("compliance:check")
    with run.rt.db.session(ctx, readonly=True) as s:
        views = register(s, run.now)
    bad = []
    for v in views:
        if v.breach.status == "closed" or not v.overdue:
            continue
        if v.breach.decision == "pending":
            bad.append(f"{v.reference}: no decision 72 h after awareness")
        else:
            late = [a.slug for a in v.accounts if a.controller_clock.state(run.now) == "overdue"]
            named = ", ".join(late) or "no account named yet"
            bad.append(f"{v.reference}: controller(s) not told within 24 h: {named}")
    open_ = sum(1 for v in views if v.breach.status != "closed")
    if bad:
        return False, f"{len(bad)} breach(es) past their target", bad
    return True, f"{len(views)} breach(es) registered, {open_} open, none past target", []


@check("breaches.notified", "Every client affected by a breach was notified (Art. 33(2))")
def _breaches_notified(run: CheckRun) -> tuple[bool, str, list[str]]:
    """A processor tells each controller of every breach affecting it, with no risk threshold:
    a closed breach must have sent its latest phase to every affected client, and no breach
    affecting a client may be documented as "not notified"."""
    from permanence.breaches.service import register

    ctx = AccessContext.system("compliance:check")
    with run.rt.db.session(ctx, readonly=True) as s:
        views = register(s, run.now)
    bad = []
    affected = 0
    for v in views:
        affected += len(v.accounts)
        if v.accounts and v.breach.decision == "not_notified":
            slugs = ", ".join(a.slug for a in v.accounts)
            bad.append(f"{v.reference}: documented as not notified, yet affects {slugs}")
        elif v.breach.status == "closed" and v.unnotified:
            slugs = ", ".join(a.slug for a in v.unnotified)
            bad.append(f"{v.reference}: closed without notifying phase {v.breach.phase} to {slugs}")
    if bad:
        return False, f"{len(bad)} breach(es) kept from a client concerned", bad
    closed = sum(1 for v in views if v.breach.status == "closed")
    return (
        True,
        f"{len(views)} breach(es) registered ({closed} closed), {affected} client(s) "
        "concerned: every closed breach was notified to each of them",
        [],
    )


@check("subprocessors.transfers", "Sub-processors outside the EEA have a transfer safeguard")
def _transfers(run: CheckRun) -> tuple[bool, str, list[str]]:
    from permanence.contracts.service import EEA, registry
    from permanence.mandates.base import Safeguard

    with run.session() as s:
        subs = registry(s)
    allowed = {sg.value for sg in Safeguard}
    bad = [
        f"{sp.code} ({sp.country}): no valid safeguard"
        for sp in subs
        if sp.country not in EEA and sp.safeguard not in allowed
    ]
    if bad:
        return False, f"{len(bad)} sub-processor(s) without safeguard", bad
    return True, f"{len(subs)} sub-processor(s), transfers covered", []


@check(
    "subprocessors.configured",
    "Every outside service the configuration uses is a sub-processor in effect",
)
def _configured(run: CheckRun) -> tuple[bool, str, list[str]]:
    """The telephony provider, SMS gateway, SMTP relay and backup storage the settings send
    data to must each be in the sub-processor register, in effect (Art. 28(2): a change is
    announced to the clients before it takes effect), with its country and transfer tool."""
    from permanence.contracts.configured import configured_services

    with run.session() as s:
        services = configured_services(s, run.rt.settings)
    bad = []
    for c in services:
        if c.entry is None:
            bad.append(f"{c.kind} ({c.host}): not in the sub-processor register")
        elif c.entry.status != "active":
            bad.append(
                f"{c.kind} ({c.host}): sub-processor '{c.entry.code}' announced, not in effect"
            )
    if bad:
        return False, f"{len(bad)} configured service(s) not covered by the register", bad
    return True, f"{len(services)} outside service(s) configured, each a sub-processor", []


# Retention: the check counts exactly what the sweep would delete (retention/service.py):
# the same record kinds (messages, appointments, call logs, recordings and voicemails,
# evaluation grids), the same starting events, the same periods per mandate version, the
# same legal holds. A record the check reports is one the sweep has not yet removed; the two
# never disagree.


def _overdue_records(s: Session, account_id: uuid.UUID, now: dt.datetime) -> dict[str, int]:
    from permanence.retention.service import REGISTRY, _account_held, _due_condition

    counts = dict.fromkeys(REGISTRY, 0)
    if _account_held(s, account_id):
        return counts
    for name, kind in REGISTRY.items():
        due = _due_condition(s, kind, account_id, now)
        if due is not None:
            counts[name] = s.scalar(select(func.count()).select_from(kind.model).where(due[0])) or 0
    return counts


@check(
    "retention.records",
    "No message, appointment, call log, recording or evaluation grid kept past its retention "
    "(as the sweep applies it)",
)
def _retention(run: CheckRun) -> tuple[bool, str, list[str]]:
    bad = []
    for a in run.accounts():
        with run.session(a.id) as s:
            counts = _overdue_records(s, a.id, run.now)
        late = {k: v for k, v in counts.items() if v}
        if late:
            bad.append(f"{a.slug}: " + ", ".join(f"{v} {k}" for k, v in sorted(late.items())))
    if bad:
        return False, f"{len(bad)} account(s) keep records past their retention", bad
    return True, "no record past its mandate's retention", []
