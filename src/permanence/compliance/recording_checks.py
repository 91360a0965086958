"""``recordings.staff_informed``: when calls are recorded, the operators and supervisors were
informed of it (CNIL guidance on recording telephone calls at work: staff are told of the
recording, its purposes, who listens and how long it is kept). Recorded as a course of the
training catalogue (``information-enregistrement``), from the DPO's training page."""

from __future__ import annotations

from sqlalchemy import select

from permanence.compliance.checks import CheckRun, _mandates, check
from permanence.context import Role

STAFF_INFORMED_COURSE = "information-enregistrement"


@check("recordings.staff_informed", "Staff were informed that calls are recorded")
def _staff_informed(run: CheckRun) -> tuple[bool, str, list[str]]:
    from permanence.staff.model import TrainingRecord, User

    recording = [a.slug for a, m, _v in _mandates(run) if m is not None and m.recording.enabled]
    if not recording:
        return True, "no account records calls", []
    with run.session() as s:
        staff = s.scalars(
            select(User).where(
                User.role.in_([Role.OPERATOR, Role.SUPERVISOR]), User.active.is_(True)
            )
        ).all()
        informed = set(
            s.scalars(
                select(TrainingRecord.user_id).where(
                    TrainingRecord.course == STAFF_INFORMED_COURSE,
                    TrainingRecord.expires_at > run.now,
                )
            )
        )
    bad = [
        f"user {u.id} ({u.role.value}): not informed of call recording ({STAFF_INFORMED_COURSE})"
        for u in staff
        if u.id not in informed
    ]
    if bad:
        return False, f"{len(bad)} staff member(s) not informed that calls are recorded", bad
    return True, f"{len(staff)} staff member(s) informed ({len(recording)} account(s) record)", []
