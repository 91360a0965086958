"""Medical messages on a health-data account (need-to-know, ``needtoknow.service``): an
assigned operator opens one only during a call with that caller (the call they answered,
still open) or after recording a break-glass reason (valid for an hour, counted in the DPO's
access review). Moved from ``needtoknow.service`` (ADR 0037): the rule reads the calls and the
callers, which sit above the assignments it builds on.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.calls.model import Call
from permanence.context import Role
from permanence.db import ctx_of, utcnow
from permanence.errors import PermissionDenied, ValidationFailed
from permanence.needtoknow.model import BreakGlassAccess
from permanence.needtoknow.service import (
    BREAK_GLASS_VALID,
    MIN_REASON,
    NeedToKnow,
    _applies,
    require_assigned,
)
from permanence.subjects.model import Caller
from permanence.subjects.service import get as get_caller


def require_medical_access(session: Session, account_id: uuid.UUID, caller_id: uuid.UUID) -> None:
    """A medical message: during a call with that caller, or with a break-glass reason."""
    ctx = ctx_of(session)
    if not _applies(session, ctx, account_id):
        return
    require_assigned(session, account_id)
    # By caller id alone (its index: with the account too, SQLite walks the account's calls),
    # once the caller is known to be of this account.
    caller = session.get(Caller, caller_id)
    if caller is not None and caller.account_id == account_id:
        in_call = session.scalars(
            select(Call.id).where(
                Call.caller_id == caller_id,
                Call.operator_id == ctx.actor_id,
                Call.answered_at.is_not(None),
                Call.ended_at.is_(None),
            )
        ).first()
        if in_call is not None:
            return
    since = utcnow() - BREAK_GLASS_VALID
    glass = session.scalars(
        select(BreakGlassAccess.id).where(
            BreakGlassAccess.account_id == account_id,
            BreakGlassAccess.user_id == ctx.actor_id,
            BreakGlassAccess.caller_id == caller_id,
            BreakGlassAccess.opened_at >= since,
        )
    ).first()
    if glass is None:
        raise NeedToKnow(
            "a medical message opens only during a call with this caller, or with a "
            "break-glass reason (hors appel : motif d'accès exceptionnel requis)"
        )


def break_glass(session: Session, caller_id: uuid.UUID, reason: str) -> BreakGlassAccess:
    """An assigned operator records why they must open this caller's medical messages now."""
    ctx = ctx_of(session)
    account_id = ctx.require_account()
    if ctx.role is not Role.OPERATOR or ctx.actor_id is None:
        raise PermissionDenied("break-glass access is for operators")
    get_caller(session, caller_id)  # 404 unless a caller of this account
    require_assigned(session, account_id)
    if len(reason.strip()) < MIN_REASON:
        raise ValidationFailed(
            f"give the reason in at least {MIN_REASON} characters (motif d'au moins "
            f"{MIN_REASON} caractères)"
        )
    row = BreakGlassAccess(
        account_id=account_id, user_id=ctx.actor_id, caller_id=caller_id, reason=reason.strip()
    )
    session.add(row)
    session.flush()
    # The reason stays in the table (it may name the patient); the audit entry says who/when.
    audit.record(session, "access.break_glass", "caller", caller_id, subject_id=caller_id)
    return row
