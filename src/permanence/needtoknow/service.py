"""Need-to-know for health data (Art. 32, 25(2), 9(3); code de la santé publique L.1110-4).

On a client account that handles health data, an operator opens callers and messages only for
an account they are assigned to, and a message only during a call with that caller (the call
they answered, still open) or after recording a break-glass reason (valid for an hour): that
second rule, which reads the calls and the callers, is ``messages.medical`` (ADR 0037); this
package keeps the assignments it builds on, below the callers and the calls.

The rule applies to an account once it has assigned operators. A health-data account with no
assignment at all fails the ``access.need_to_know`` compliance check: the DPO sees it and
assigns the operators who serve it (``permanence access assign``), which turns the rule on.
Supervisors, the DPO and administrators are not operators: their reads are audited as before.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account
from permanence.accounts.service import handles_health_data as _health_account
from permanence.accounts.service import mandate_version
from permanence.audit import service as audit
from permanence.context import AccessContext, Role
from permanence.db import ctx_of, utcnow
from permanence.errors import Conflict, NotFound, PermissionDenied
from permanence.needtoknow.model import BreakGlassAccess, OperatorAssignment
from permanence.staff.model import User

BREAK_GLASS_VALID = dt.timedelta(hours=1)
MIN_REASON = 15
DESK = frozenset({Role.DPO, Role.ADMIN, Role.SYSTEM})


class NeedToKnow(PermissionDenied):
    """Refused by the need-to-know rule (a 403 with the reason, never a 500)."""


def handles_health_data(session: Session, account_id: uuid.UUID) -> bool:
    account = session.get(Account, account_id)
    if account is None:
        return False
    try:
        _row, mandate = mandate_version(session, account_id)
    except NotFound:
        mandate = None
    return _health_account(account, mandate)


def _active(
    session: Session, account_id: uuid.UUID, user_id: uuid.UUID | None = None
) -> list[OperatorAssignment]:
    q = select(OperatorAssignment).where(
        OperatorAssignment.account_id == account_id, OperatorAssignment.ended_at.is_(None)
    )
    if user_id is not None:
        q = q.where(OperatorAssignment.user_id == user_id)
    return list(session.scalars(q))


def _applies(session: Session, ctx: AccessContext, account_id: uuid.UUID) -> bool:
    if ctx.role is not Role.OPERATOR or ctx.actor_id is None:
        return False
    if not handles_health_data(session, account_id):
        return False
    return bool(_active(session, account_id))


def may_answer(
    session: Session, account_id: uuid.UUID, user_ids: list[uuid.UUID]
) -> set[uuid.UUID]:
    """Of these staff, those the queue may offer this account's calls: all of them, unless the
    account's health data is on a need-to-know basis (it has assigned operators); then only
    its assigned operators, and the staff who are not operators (as ``require_assigned``)."""
    if not user_ids or not handles_health_data(session, account_id):
        return set(user_ids)
    assigned = {a.user_id for a in _active(session, account_id)}
    if not assigned:
        return set(user_ids)
    operators = set(
        session.scalars(select(User.id).where(User.id.in_(user_ids), User.role == Role.OPERATOR))
    )
    return {u for u in user_ids if u not in operators or u in assigned}


def require_assigned(session: Session, account_id: uuid.UUID) -> None:
    """An operator reads a health-data account's callers and messages only if assigned."""
    ctx = ctx_of(session)
    if not _applies(session, ctx, account_id):
        return
    if not _active(session, account_id, ctx.actor_id):
        raise NeedToKnow(
            "you are not assigned to this client account: its health data is on a need-to-know "
            "basis (vous n'êtes pas affecté à ce client)"
        )


# -- the DPO's side -----------------------------------------------------------------------


def _desk(session: Session) -> uuid.UUID | None:
    ctx = ctx_of(session)
    if ctx.role not in DESK:
        raise PermissionDenied("assignments are managed by the DPO or an administrator")
    return ctx.actor_id


def assign(session: Session, user_id: uuid.UUID) -> OperatorAssignment:
    actor = _desk(session)
    account_id = ctx_of(session).require_account()
    user = session.get(User, user_id)
    if user is None or user.role is not Role.OPERATOR or not user.active:
        raise NotFound("no active operator with this id")
    if _active(session, account_id, user_id):
        raise Conflict("this operator is already assigned to the account")
    row = OperatorAssignment(account_id=account_id, user_id=user_id, assigned_by=actor)
    session.add(row)
    session.flush()
    audit.record(session, "access.assign", "user", user_id)
    return row


def unassign(session: Session, user_id: uuid.UUID) -> None:
    actor = _desk(session)
    account_id = ctx_of(session).require_account()
    rows = _active(session, account_id, user_id)
    if not rows:
        raise NotFound("this operator is not assigned to the account")
    for row in rows:
        row.ended_at, row.ended_by = utcnow(), actor
    audit.record(session, "access.unassign", "user", user_id)


@dataclass(frozen=True)
class AccessLine:
    user_id: uuid.UUID
    email: str
    display_name: str
    role: str
    basis: str  # assigned | role
    since: dt.datetime | None
    until: dt.datetime | None
    break_glass: int


def access_list(session: Session) -> list[AccessLine]:
    """Who can open the context account's data, for the periodic access review: each
    operator assignment (current and ended) with their break-glass count, then the staff
    whose role reaches every account (supervisors, DPO, administrators)."""
    _desk(session)
    account_id = ctx_of(session).require_account()
    lines = []
    glass: dict[uuid.UUID, int] = {}
    for uid in session.scalars(
        select(BreakGlassAccess.user_id).where(BreakGlassAccess.account_id == account_id)
    ):
        glass[uid] = glass.get(uid, 0) + 1
    rows = session.execute(
        select(OperatorAssignment, User)
        .join(User, User.id == OperatorAssignment.user_id)
        .where(OperatorAssignment.account_id == account_id)
        .order_by(User.email, OperatorAssignment.assigned_at)
    ).all()
    for a, u in rows:
        lines.append(
            AccessLine(
                u.id, u.email, u.display_name, u.role.value, "assigned", a.assigned_at,
                a.ended_at, glass.get(u.id, 0),
            )
        )  # fmt: skip
    for u in session.scalars(
        select(User)
        .where(User.role.in_([Role.SUPERVISOR, Role.DPO, Role.ADMIN]), User.active.is_(True))
        .order_by(User.email)
    ):
        lines.append(AccessLine(u.id, u.email, u.display_name, u.role.value, "role", None, None, 0))
    return lines


def access_csv(lines: list[AccessLine]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(
        ["user_id", "email", "name", "role", "basis", "since", "until", "break_glass_accesses"]
    )
    for x in lines:
        w.writerow(
            [
                x.user_id, x.email, x.display_name, x.role, x.basis,
                x.since.isoformat() if x.since else "",
                x.until.isoformat() if x.until else "",
                x.break_glass,
            ]
        )  # fmt: skip
    return out.getvalue()
