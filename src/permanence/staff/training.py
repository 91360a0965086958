"""The training gate: no personal data for staff who are not trained and bound to
confidentiality (Art. 28(3)(b), Art. 32(4)).

The gate is checked by every use case that opens a call or reads a caller's data for a staff
member; it names what is missing so the person knows what to do.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.context import STAFF_ROLES, AccessContext
from permanence.db import utcnow
from permanence.errors import PermissionDenied
from permanence.staff.model import ConfidentialityUndertaking, TrainingRecord

REQUIRED_COURSE = "rgpd-fondamentaux"
COURSE_VALIDITY = dt.timedelta(days=365)
UNDERTAKING_VERSION = "2026-1"


class TrainingRequired(PermissionDenied):
    code = "training_required"


def record_training(
    session: Session,
    user_id: uuid.UUID,
    *,
    course: str = REQUIRED_COURSE,
    completed_at: dt.datetime | None = None,
    validity: dt.timedelta = COURSE_VALIDITY,
) -> TrainingRecord:
    done = completed_at or utcnow()
    row = TrainingRecord(
        user_id=user_id,
        course=course,
        completed_at=done,
        expires_at=done + validity,
        recorded_by=session.info["ctx"].actor_id,
    )
    session.add(row)
    session.flush()
    audit.record(session, "staff.training_recorded", "user", user_id, details={"course": course})
    return row


def sign_undertaking(
    session: Session, user_id: uuid.UUID, *, version: str = UNDERTAKING_VERSION
) -> ConfidentialityUndertaking:
    row = ConfidentialityUndertaking(user_id=user_id, version=version, signed_at=utcnow())
    session.add(row)
    session.flush()
    audit.record(session, "staff.undertaking_signed", "user", user_id, details={"version": version})
    return row


def missing(session: Session, user_id: uuid.UUID, at: dt.datetime | None = None) -> list[str]:
    """What stands between this staff member and personal data (empty when nothing)."""
    now = at or utcnow()
    problems = []
    valid = session.scalars(
        select(TrainingRecord.id).where(
            TrainingRecord.user_id == user_id,
            TrainingRecord.course == REQUIRED_COURSE,
            TrainingRecord.expires_at > now,
        )
    ).first()
    if valid is None:
        problems.append("your data-protection training has expired or was never recorded")
    signed = session.scalars(
        select(ConfidentialityUndertaking.id).where(
            ConfidentialityUndertaking.user_id == user_id,
            ConfidentialityUndertaking.version == UNDERTAKING_VERSION,
        )
    ).first()
    if signed is None:
        problems.append(
            f"you have not signed the confidentiality undertaking (version {UNDERTAKING_VERSION})"
        )
    return problems


def require_trained(session: Session, ctx: AccessContext) -> None:
    """Raise TrainingRequired for staff who may not touch personal data yet."""
    if ctx.role not in STAFF_ROLES or ctx.actor_id is None:
        return
    problems = missing(session, ctx.actor_id)
    if problems:
        audit.record(session, "staff.gate_refused", "user", ctx.actor_id)
        raise TrainingRequired("access to personal data refused: " + "; ".join(problems))


@dataclass(frozen=True)
class TrainingStatus:
    user_id: uuid.UUID
    display_name: str
    role: str
    trained_until: dt.datetime | None
    undertaking_signed: bool

    @property
    def cleared(self) -> bool:
        return self.trained_until is not None and self.undertaking_signed


def status_of_staff(session: Session, at: dt.datetime | None = None) -> list[TrainingStatus]:
    """Every active staff member with the end of their valid training and whether they signed
    the current undertaking: what the DPO checks (the gate itself is ``require_trained``)."""
    from sqlalchemy import func

    from permanence.staff.model import User

    now = at or utcnow()
    until = dict(
        session.execute(
            select(TrainingRecord.user_id, func.max(TrainingRecord.expires_at))
            .where(TrainingRecord.course == REQUIRED_COURSE, TrainingRecord.expires_at > now)
            .group_by(TrainingRecord.user_id)
        ).all()
    )
    signed = set(
        session.scalars(
            select(ConfidentialityUndertaking.user_id).where(
                ConfidentialityUndertaking.version == UNDERTAKING_VERSION
            )
        )
    )
    staff = session.scalars(
        select(User)
        .where(User.role.in_([r.value for r in STAFF_ROLES]), User.active.is_(True))
        .order_by(User.display_name)
    )
    return [
        TrainingStatus(u.id, u.display_name, u.role.value, until.get(u.id), u.id in signed)
        for u in staff
    ]
