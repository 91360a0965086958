"""Record audits of the service and of sub-processors, follow their actions, find what is
overdue (the compliance check ``audits.due``) and list the history (the evidence pack)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.audits.model import AuditAction, PracticeAudit
from permanence.context import STAFF_ROLES, Role
from permanence.contracts.model import SubProcessor
from permanence.db import ctx_of, utcnow
from permanence.errors import NotFound, PermissionDenied, ValidationFailed
from permanence.pii import STRUCTURED_TYPES, detect
from permanence.render import paris_date
from permanence.staff.model import User

DESK = frozenset({Role.DPO, Role.ADMIN, Role.SYSTEM})
SERVICE = "service"  # the target name of an audit of the service itself


def _desk(session: Session) -> uuid.UUID | None:
    ctx = ctx_of(session)
    if ctx.role not in DESK:
        raise PermissionDenied("audits are recorded by the DPO or an administrator")
    return ctx.actor_id


def _text(name: str, value: str, limit: int) -> str:
    value = value.strip()
    if not value:
        raise ValidationFailed(f"{name} is required", problems=[f"{name}:required"])
    if len(value) > limit:
        raise ValidationFailed(
            f"{name} is longer than {limit} characters", problems=[f"{name}:too_long"]
        )
    found = detect(value, STRUCTURED_TYPES)
    if found:
        types = ", ".join(sorted({e.type for e in found}))
        raise ValidationFailed(
            f"{name} contains personal data ({types}): describe, do not quote",
            problems=[f"{name}:personal_data"],
        )
    return value


@dataclass(frozen=True)
class NewAction:
    action: str
    owner_email: str
    due_on: dt.date


def _owner(session: Session, email: str) -> uuid.UUID:
    user = session.scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None or user.role not in STAFF_ROLES or not user.active:
        raise ValidationFailed(
            "the owner of an action must be an active staff member", problems=["owner:not_staff"]
        )
    return user.id


def _target(session: Session, target: str) -> uuid.UUID | None:
    if target == SERVICE:
        return None
    sp = session.scalars(select(SubProcessor).where(SubProcessor.code == target)).first()
    if sp is None:
        raise ValidationFailed(
            f"unknown audit target {target!r}: '{SERVICE}' or a sub-processor code",
            problems=["target:unknown"],
        )
    return sp.id


def record_audit(
    session: Session,
    *,
    target: str,
    performed_on: dt.date,
    scope: str,
    findings: str,
    next_due_on: dt.date,
    actions: Sequence[NewAction] = (),
) -> PracticeAudit:
    """One audit with its follow-up actions (each with an owner and a due date)."""
    actor = _desk(session)
    today = paris_date(utcnow())
    if performed_on > today:
        raise ValidationFailed("the audit date is in the future", problems=["performed_on:future"])
    if next_due_on <= performed_on:
        raise ValidationFailed(
            "the next audit must be due after this one", problems=["next_due_on:before"]
        )
    row = PracticeAudit(
        subprocessor_id=_target(session, target),
        performed_on=performed_on,
        scope=_text("scope", scope, 2000),
        findings=_text("findings", findings, 4000),
        next_due_on=next_due_on,
        recorded_by=actor,
    )
    session.add(row)
    session.flush()
    for a in actions:
        add_action(session, row.id, a)
    audit.record(
        session,
        "governance.audit_recorded",
        "practice_audit",
        row.id,
        details={
            "target": target if target == SERVICE else "subprocessor",
            "actions": len(actions),
        },
    )
    return row


def add_action(session: Session, audit_id: uuid.UUID, new: NewAction) -> AuditAction:
    _desk(session)
    if session.get(PracticeAudit, audit_id) is None:
        raise NotFound("no such audit")
    row = AuditAction(
        audit_id=audit_id,
        action=_text("action", new.action, 500),
        owner_id=_owner(session, new.owner_email),
        due_on=new.due_on,
    )
    session.add(row)
    session.flush()
    audit.record(session, "governance.audit_action_added", "audit_action", row.id)
    return row


def complete_action(session: Session, action_id: uuid.UUID) -> AuditAction:
    actor = _desk(session)
    row = session.get(AuditAction, action_id)
    if row is None:
        raise NotFound("no such follow-up action")
    if row.done_at is None:
        row.done_at, row.done_by = utcnow(), actor
        audit.record(session, "governance.audit_action_done", "audit_action", row.id)
    return row


@dataclass(frozen=True)
class ActionView:
    action: AuditAction
    owner: str  # the owner's role and id: no name leaves the desk in exports
    owner_name: str

    def state(self, today: dt.date) -> str:
        if self.action.done_at is not None:
            return "done"
        return "overdue" if today > self.action.due_on else "open"


def _action_view(a: AuditAction, owner: User | None) -> ActionView:
    if owner is None:
        return ActionView(a, str(a.owner_id), str(a.owner_id))
    return ActionView(a, f"{owner.role.value}:{owner.id}", owner.display_name)


@dataclass(frozen=True)
class AuditView:
    audit: PracticeAudit
    target: str  # "service" or the sub-processor's code
    target_name: str
    actions: list[ActionView]
    latest: bool  # the latest audit of its target: its next due date is the one that counts

    def overdue(self, today: dt.date) -> bool:
        return self.latest and today > self.audit.next_due_on


def history(session: Session) -> list[AuditView]:
    """Every audit, newest first, with its actions."""
    _desk(session)
    names = {sp.id: (sp.code, sp.name) for sp in session.scalars(select(SubProcessor))}
    users = {u.id: u for u in session.scalars(select(User).where(User.role.in_(list(STAFF_ROLES))))}
    audits = list(
        session.scalars(
            select(PracticeAudit).order_by(
                PracticeAudit.performed_on.desc(), PracticeAudit.created_at.desc()
            )
        )
    )
    actions: dict[uuid.UUID, list[AuditAction]] = {}
    for a in session.scalars(select(AuditAction).order_by(AuditAction.due_on)):
        actions.setdefault(a.audit_id, []).append(a)
    seen: set[uuid.UUID | None] = set()
    out = []
    for row in audits:
        code, name = (SERVICE, SERVICE)
        if row.subprocessor_id is not None:
            code, name = names[row.subprocessor_id]
        out.append(
            AuditView(
                row,
                code,
                name,
                [_action_view(a, users.get(a.owner_id)) for a in actions.get(row.id, [])],
                row.subprocessor_id not in seen,
            )
        )
        seen.add(row.subprocessor_id)
    return out


@dataclass(frozen=True)
class Overdue:
    audits: list[str]  # "service, due 2026-01-01"
    actions: list[str]  # "action <id> of the service audit of 2025-06-01, due …"
    never_audited: list[str]  # active sub-processors without any audit


def overdue(session: Session, today: dt.date) -> Overdue:
    views = history(session)
    audits = [
        f"{v.target}: next audit was due {v.audit.next_due_on}" for v in views if v.overdue(today)
    ]
    late = [
        f"action {a.action.id} ({v.target} audit of {v.audit.performed_on}, owner {a.owner}): "
        f"due {a.action.due_on}"
        for v in views
        for a in v.actions
        if a.state(today) == "overdue"
    ]
    audited = {v.target for v in views}
    never = [
        sp.code
        for sp in session.scalars(select(SubProcessor).where(SubProcessor.status == "active"))
        if sp.code not in audited
    ]
    return Overdue(audits, late, sorted(never))
