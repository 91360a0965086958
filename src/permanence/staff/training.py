"""The training gate: no personal data for staff who are not trained and bound to
confidentiality (Art. 28(3)(b), Art. 32(4)).

The gate is checked by every use case that opens a call or reads a caller's data for a staff
member; it names what is missing so the person knows what to do.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.context import STAFF_ROLES, AccessContext
from permanence.db import utcnow
from permanence.errors import Conflict, PermissionDenied, ValidationFailed
from permanence.mail import Mail, Mailer
from permanence.staff.model import (
    ConfidentialityUndertaking,
    TrainingCourse,
    TrainingRecord,
    User,
)

REQUIRED_COURSE = "rgpd-fondamentaux"
COURSE_VALIDITY = dt.timedelta(days=365)
UNDERTAKING_VERSION = "2026-1"


class TrainingRequired(PermissionDenied):
    code = "training_required"

    def __init__(self, message: str, *, undertaking: bool = False) -> None:
        super().__init__(message)
        # The current confidentiality undertaking is among what is missing: the pages send
        # the person to sign it (``/engagement``).
        self.undertaking = undertaking


def record_training(
    session: Session,
    user_id: uuid.UUID,
    *,
    course: str = REQUIRED_COURSE,
    completed_at: dt.datetime | None = None,
    validity: dt.timedelta = COURSE_VALIDITY,
    trainer: str | None = None,
    duration_minutes: int | None = None,
    attestation_id: uuid.UUID | None = None,
) -> TrainingRecord:
    done = completed_at or utcnow()
    row = TrainingRecord(
        user_id=user_id,
        course=course,
        completed_at=done,
        expires_at=done + validity,
        recorded_by=session.info["ctx"].actor_id,
        trainer=trainer,
        duration_minutes=duration_minutes,
        attestation_id=attestation_id,
    )
    session.add(row)
    session.flush()
    details: dict[str, str | uuid.UUID] = {"course": course}
    if attestation_id is not None:
        details["attestation"] = attestation_id
    audit.record(session, "staff.training_recorded", "user", user_id, details=details)
    return row


def sign_undertaking(
    session: Session, user_id: uuid.UUID, *, version: str = UNDERTAKING_VERSION
) -> ConfidentialityUndertaking:
    row = ConfidentialityUndertaking(user_id=user_id, version=version, signed_at=utcnow())
    session.add(row)
    session.flush()
    audit.record(session, "staff.undertaking_signed", "user", user_id, details={"version": version})
    return row


def undertaking_signed(session: Session, user_id: uuid.UUID) -> bool:
    """Whether this person signed the current version of the confidentiality undertaking."""
    return (
        session.scalars(
            select(ConfidentialityUndertaking.id).where(
                ConfidentialityUndertaking.user_id == user_id,
                ConfidentialityUndertaking.version == UNDERTAKING_VERSION,
            )
        ).first()
        is not None
    )


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
    for course in session.scalars(
        select(TrainingCourse.code).where(
            TrainingCourse.required.is_(True), TrainingCourse.active.is_(True)
        )
    ):
        done = session.scalars(
            select(TrainingRecord.id).where(
                TrainingRecord.user_id == user_id,
                TrainingRecord.course == course,
                TrainingRecord.expires_at > now,
            )
        ).first()
        if done is None:
            problems.append(f"your training '{course}' has expired or was never recorded")
    if not undertaking_signed(session, user_id):
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
        raise TrainingRequired(
            "access to personal data refused: " + "; ".join(problems),
            undertaking=any("confidentiality undertaking" in p for p in problems),
        )


# -- the course catalogue and reminders ---------------------------------------------------

BUILTIN_COURSES = {
    REQUIRED_COURSE: ("Protection des données : les fondamentaux", "Data protection basics", 365),
}


@dataclass(frozen=True)
class Course:
    code: str
    title_fr: str
    title_en: str
    validity_days: int
    required: bool


def courses(session: Session) -> list[Course]:
    """The catalogue: the built-in required course, then the courses added to it."""
    out = {
        code: Course(code, fr, en, days, True) for code, (fr, en, days) in BUILTIN_COURSES.items()
    }
    for c in session.scalars(
        select(TrainingCourse).where(TrainingCourse.active.is_(True)).order_by(TrainingCourse.code)
    ):
        out[c.code] = Course(c.code, c.title_fr, c.title_en, c.validity_days, c.required)
    return list(out.values())


def add_course(
    session: Session,
    *,
    code: str,
    title_fr: str,
    title_en: str = "",
    validity_days: int = 365,
    required: bool = False,
) -> TrainingCourse:
    if not code or not code.replace("-", "").isalnum() or code.lower() != code:
        raise ValidationFailed("course code must be lower-case letters, digits and hyphens")
    if validity_days < 1:
        raise ValidationFailed("a course is valid for at least one day")
    if session.get(TrainingCourse, code) is not None or code in BUILTIN_COURSES:
        raise Conflict(f"course '{code}' already exists")
    row = TrainingCourse(
        code=code,
        title_fr=title_fr.strip(),
        title_en=title_en.strip(),
        validity_days=validity_days,
        required=required,
    )
    session.add(row)
    session.flush()
    audit.record(session, "training.course_add", "course", code, details={"required": required})
    return row


@dataclass(frozen=True)
class Reminder:
    user_id: uuid.UUID
    email: str
    course: str
    title_fr: str
    expires_at: dt.datetime
    record_id: uuid.UUID


def expiring(session: Session, days: int = 30, at: dt.datetime | None = None) -> list[Reminder]:
    """Active staff whose latest completion of a catalogue course expires within ``days``
    (or has expired), and who have not renewed it."""
    now = at or utcnow()
    horizon = now + dt.timedelta(days=days)
    catalogue = {c.code: c for c in courses(session)}
    latest = (
        select(
            TrainingRecord.user_id,
            TrainingRecord.course,
            func.max(TrainingRecord.expires_at).label("expires_at"),
        )
        .group_by(TrainingRecord.user_id, TrainingRecord.course)
        .subquery()
    )
    rows = session.execute(
        select(User, TrainingRecord)
        .join(latest, latest.c.user_id == User.id)
        .join(
            TrainingRecord,
            (TrainingRecord.user_id == latest.c.user_id)
            & (TrainingRecord.course == latest.c.course)
            & (TrainingRecord.expires_at == latest.c.expires_at),
        )
        .where(
            User.active.is_(True),
            User.role.in_(list(STAFF_ROLES)),
            latest.c.expires_at <= horizon,
        )
        .order_by(latest.c.expires_at)
    ).all()
    return [
        Reminder(
            u.id,
            u.email,
            r.course,
            catalogue[r.course].title_fr if r.course in catalogue else r.course,
            r.expires_at,
            r.id,
        )
        for u, r in rows
    ]


def send_reminders(
    session: Session, mailer: Mailer, days: int = 30, at: dt.datetime | None = None
) -> list[Reminder]:
    """E-mail each staff member whose training expires within ``days``, once per completion."""
    from permanence.render import paris

    sent = []
    for r in expiring(session, days, at):
        record = session.get(TrainingRecord, r.record_id)
        assert record is not None
        if record.reminded_at is not None:
            continue
        mailer.send(
            Mail(
                to=r.email,
                subject=f"Formation à renouveler : {r.title_fr}",
                text=(
                    f"Bonjour,\n\nVotre formation « {r.title_fr} » "
                    + ("a expiré le " if r.expires_at <= (at or utcnow()) else "expire le ")
                    + f"{paris(r.expires_at, '%d/%m/%Y')}. Sans formation valide, l'accès aux "
                    "données des appelants vous sera refusé. Merci de la renouveler.\n"
                ),
            )
        )
        record.reminded_at = at or utcnow()
        audit.record(session, "training.reminder", "user", r.user_id, details={"course": r.course})
        sent.append(r)
    return sent


@dataclass(frozen=True)
class StaffStatus:
    user_id: uuid.UUID
    display_name: str
    email: str
    role: str
    mfa: bool
    problems: list[str]
    trainings: list[TrainingRecord]
    undertakings: list[ConfidentialityUndertaking]


def staff_status(session: Session, at: dt.datetime | None = None) -> list[StaffStatus]:
    """Every active staff member, with their courses, undertakings and what they lack."""
    out = []
    for u in session.scalars(
        select(User)
        .where(User.role.in_(list(STAFF_ROLES)), User.active.is_(True))
        .order_by(User.display_name)
    ):
        out.append(
            StaffStatus(
                u.id,
                u.display_name,
                u.email,
                u.role.value,
                u.mfa_enabled or u.totp_sealed is not None,
                missing(session, u.id, at),
                list(
                    session.scalars(
                        select(TrainingRecord)
                        .where(TrainingRecord.user_id == u.id)
                        .order_by(TrainingRecord.completed_at.desc())
                    )
                ),
                list(
                    session.scalars(
                        select(ConfidentialityUndertaking).where(
                            ConfidentialityUndertaking.user_id == u.id
                        )
                    )
                ),
            )
        )
    return out
