"""Spending a recovery code at sign-in (a second factor standing in for the authenticator).
Below both ``auth`` (which asks it when the code typed is not a TOTP) and ``credentials``
(which issues the codes and re-exports this), so neither imports the other back."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.staff.credentials_model import RecoveryCode
from permanence.staff.model import User
from permanence.staff.passwords import verify_password

__all__ = ["use_recovery_code"]


def _normalise(code: str) -> str:
    return "".join(c for c in code.lower() if c.isalnum())


def use_recovery_code(session: Session, user: User, code: str, now: dt.datetime) -> bool:
    """Spend one unused recovery code of the user matching ``code`` (never twice)."""
    wanted = _normalise(code)
    if len(wanted) != 10:
        return False
    for row in session.scalars(
        select(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ):
        if verify_password(row.code_hash, wanted):
            row.used_at = now
            audit.record(session, "auth.recovery_code_used", "user", user.id)
            return True
    return False
