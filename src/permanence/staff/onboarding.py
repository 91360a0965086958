"""Onboarding staff: recording a training session for one or several staff members, its
renewal, the DPO's view of who is trained, and the confidentiality undertaking each staff
member signs in the product (Art. 28(3)(b), Art. 29, Art. 32(4) GDPR).

The gate itself is ``staff.training.require_trained``: these use cases only write what it
reads (training records, signed undertakings).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.context import STAFF_ROLES, Role
from permanence.crypto.keyring import Keyring
from permanence.db import ctx_of, utcnow
from permanence.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from permanence.filestore import RecordingStore
from permanence.render import paris_date
from permanence.staff import attestations, training
from permanence.staff.model import ConfidentialityUndertaking, TrainingRecord, User

PARIS = ZoneInfo("Europe/Paris")
# Who records training: the DPO and the administrators (and the command line).
RECORDERS = frozenset({Role.DPO, Role.ADMIN, Role.SYSTEM})
MAX_PEOPLE = 100
MAX_DURATION_MINUTES = 24 * 60
SOON = dt.timedelta(days=30)


class TrainingRefused(ValidationFailed):
    """A refused training record; ``key`` names the problem for the pages."""

    def __init__(self, key: str, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message, problems)
        self.key = key


def paris_today() -> dt.date:
    """Today in France (completion dates are French calendar dates)."""
    return paris_date(utcnow())


def _completion(day: dt.date) -> dt.datetime:
    """A completion date as a moment: noon in France that day (shown as that date)."""
    return dt.datetime.combine(day, dt.time(12), PARIS).astimezone(dt.UTC)


def record_session(
    session: Session,
    keyring: Keyring,
    store: RecordingStore,
    *,
    user_ids: Sequence[uuid.UUID],
    course: str,
    completed_on: dt.date,
    trainer: str | None = None,
    duration_minutes: int | None = None,
    attestation: bytes | None = None,
    today: dt.date | None = None,
) -> list[TrainingRecord]:
    """Record that these staff members completed ``course`` on ``completed_on``: one
    completion each, valid for the course's period, sharing the session's attestation.
    Everything is checked before anything is written."""
    ctx = ctx_of(session)
    if ctx.role not in RECORDERS:
        raise PermissionDenied("training is recorded by the DPO or an administrator")
    people = list(dict.fromkeys(user_ids))
    if not people:
        raise TrainingRefused("people", "choose at least one staff member")
    if len(people) > MAX_PEOPLE:
        raise TrainingRefused("people", f"at most {MAX_PEOPLE} staff members at once")
    catalogue = {c.code: c for c in training.courses(session)}
    chosen = catalogue.get(course)
    if chosen is None:
        raise TrainingRefused(
            "course",
            "unknown training module",
            ["unknown training module", f"known modules: {', '.join(sorted(catalogue))}"],
        )
    today = today or paris_today()
    if completed_on > today:
        raise TrainingRefused("future", "the completion date is in the future")
    if completed_on < today - dt.timedelta(days=chosen.validity_days):
        raise TrainingRefused(
            "old",
            "the completion date is older than the module's validity: the training has "
            "already expired",
        )
    name = (trainer or "").strip() or None
    if name is not None and len(name) > 200:
        raise TrainingRefused("trainer", "the trainer's name is longer than 200 characters")
    if duration_minutes is not None and not 1 <= duration_minutes <= MAX_DURATION_MINUTES:
        raise TrainingRefused("duration", "the duration must be between 1 and 1440 minutes")
    if attestation is not None:
        attestations.sniff(attestation)  # refused before anything is written
    found = {u.id: u for u in session.scalars(select(User).where(User.id.in_(people)))}
    if len(found) != len(people):
        raise NotFound("no such staff member")
    if any(u.role not in STAFF_ROLES or not u.active for u in found.values()):
        raise TrainingRefused("not_staff", "only active staff members can be recorded as trained")
    attestation_id = None
    if attestation is not None:
        attestation_id = attestations.save(session, keyring, store, attestation).id
    done = _completion(completed_on)
    return [
        training.record_training(
            session,
            uid,
            course=course,
            completed_at=done,
            validity=dt.timedelta(days=chosen.validity_days),
            trainer=name,
            duration_minutes=duration_minutes,
            attestation_id=attestation_id,
        )
        for uid in people
    ]


def user_ids_by_email(session: Session, emails: Sequence[str]) -> list[uuid.UUID]:
    """Staff ids for e-mail addresses (the command line names people by e-mail)."""
    wanted = [e.strip().lower() for e in emails]
    found = {
        u.email.lower(): u.id for u in session.scalars(select(User).where(User.email.in_(wanted)))
    }
    unknown = [e for e in wanted if e not in found]
    if unknown:
        raise NotFound(f"no user with {len(unknown)} of these e-mail addresses")
    return [found[e] for e in wanted]


# -- the DPO's board -----------------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    version: str
    signed_at: dt.datetime


@dataclass(frozen=True)
class BoardRow:
    user_id: uuid.UUID
    name: str
    role: str
    mfa: bool
    cleared: bool
    # The required course: the latest expiry, and "valid", "soon", "expired" or "missing".
    trained_until: dt.datetime | None
    status: str
    undertaking: Signed | None  # the current version, when signed
    trainings: list[TrainingRecord]


def board(session: Session, at: dt.datetime | None = None) -> list[BoardRow]:
    """Every active staff member: their required training's state, the undertaking they
    signed, their completions (newest first)."""
    now = at or utcnow()
    rows = []
    for st in training.staff_status(session, now):
        until = max(
            (t.expires_at for t in st.trainings if t.course == training.REQUIRED_COURSE),
            default=None,
        )
        if until is None:
            status = "missing"
        elif until <= now:
            status = "expired"
        elif until <= now + SOON:
            status = "soon"
        else:
            status = "valid"
        current = [u for u in st.undertakings if u.version == training.UNDERTAKING_VERSION]
        rows.append(
            BoardRow(
                st.user_id,
                st.display_name,
                st.role,
                st.mfa,
                not st.problems,
                until,
                status,
                Signed(current[0].version, current[0].signed_at) if current else None,
                st.trainings,
            )
        )
    return rows


# -- the confidentiality undertaking ---------------------------------------------------------


def sign_current(session: Session, version: str) -> ConfidentialityUndertaking:
    """The signed-in staff member signs the undertaking they read (``version``); signing
    the current version twice keeps the first signature."""
    ctx = ctx_of(session)
    if ctx.role not in STAFF_ROLES or ctx.actor_id is None:
        raise PermissionDenied("the confidentiality undertaking is signed by staff members")
    if version != training.UNDERTAKING_VERSION:
        raise Conflict(
            "the undertaking's text has changed since it was shown: read version "
            f"{training.UNDERTAKING_VERSION} and sign again"
        )
    existing = session.scalars(
        select(ConfidentialityUndertaking).where(
            ConfidentialityUndertaking.user_id == ctx.actor_id,
            ConfidentialityUndertaking.version == version,
        )
    ).first()
    if existing is not None:
        return existing
    return training.sign_undertaking(session, ctx.actor_id, version=version)
