"""Opening a breach at the moment of awareness, finding it, filling its Art. 33(3) contents and
saying what is still missing."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.breaches.base import (
    _FIELD_FR,
    _REQUIRED_LABELS,
    CONTENT_FIELDS,
    DATA_CATEGORIES,
    REFERENCE_LOCK_KEY,
    SUBJECT_CATEGORIES,
    BreachConflict,
    BreachRefused,
    _aware,
    _codes,
    _impacts,
    _require_desk,
    _screen,
)
from permanence.breaches.model import Breach, BreachSupplement
from permanence.db import utcnow
from permanence.errors import NotFound


def open_breach(
    session: Session,
    *,
    aware_at: dt.datetime,
    nature: str = "",
    occurred_from: dt.datetime | None = None,
    occurred_to: dt.datetime | None = None,
) -> Breach:
    """Record an incident at the moment the provider became aware of it (every clock starts)."""
    actor = _require_desk(session)
    aware = _aware(aware_at, "aware_at")
    if aware > utcnow() + dt.timedelta(minutes=5):
        raise BreachRefused("future", "aware_at is in the future", field="aware_at")
    year = aware.year
    if session.get_bind().dialect.name == "postgresql":
        # References are numbered per year: two desks opening a breach at the same moment must
        # not both take the next number (SQLite's writers are serialised already).
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": REFERENCE_LOCK_KEY})
    count = session.scalar(
        select(func.count()).select_from(Breach).where(Breach.reference.like(f"V-{year}-%"))
    )
    breach = Breach(
        id=uuid.uuid4(),
        reference=f"V-{year}-{(count or 0) + 1:03d}",
        aware_at=aware,
        nature=_screen("nature", nature),
        occurred_from=_aware(occurred_from, "occurred_from") if occurred_from else None,
        occurred_to=_aware(occurred_to, "occurred_to") if occurred_to else None,
        created_by=actor,
    )
    session.add(breach)
    session.flush()
    audit.record(session, "breach.open", "breach", breach.id, details={"ref": breach.reference})
    return breach


def get_breach(session: Session, breach_id: uuid.UUID) -> Breach:
    _require_desk(session)
    breach = session.get(Breach, breach_id)
    if breach is None:
        raise NotFound("no such breach")
    return breach


def breach_by_reference(session: Session, reference: str) -> Breach:
    _require_desk(session)
    breach = session.scalars(select(Breach).where(Breach.reference == reference)).first()
    if breach is None:
        raise NotFound(f"no breach '{reference}'")
    return breach


def _any_notice(session: Session, breach: Breach) -> bool:
    return any(ba.notified_at is not None for ba in _impacts(session, breach).values())


def update_contents(
    session: Session,
    breach_id: uuid.UUID,
    *,
    nature: str | None = None,
    data_categories: Sequence[str] | None = None,
    subject_categories: Sequence[str] | None = None,
    approx_subjects: int | None = None,
    approx_records: int | None = None,
    contact_point: str | None = None,
    consequences: str | None = None,
    measures: str | None = None,
    occurred_from: dt.datetime | None = None,
    occurred_to: dt.datetime | None = None,
    unintelligible: bool | None = None,
) -> list[str]:
    """Set Art. 33(3) contents. Once a notice went out, a change opens the next phase (33(4)).

    ``unintelligible``: the data that left was encrypted with a key that stayed safe (what
    opens the Art. 34(3)(a) exception to the controllers); refused for a breach scoped to a
    compromised staff account, which saw the data decrypted.

    Returns the names of the fields that changed.
    """
    actor = _require_desk(session)
    breach = get_breach(session, breach_id)
    if breach.status == "closed":
        raise BreachConflict("closed", "this breach is closed")
    new: dict[str, object] = {}
    for name, value in (
        ("nature", nature),
        ("contact_point", contact_point),
        ("consequences", consequences),
        ("measures", measures),
    ):
        if value is not None:
            new[name] = _screen(name, value)
    if data_categories is not None:
        new["data_categories"] = _codes("data category", data_categories, DATA_CATEGORIES)
    if subject_categories is not None:
        new["subject_categories"] = _codes(
            "subject category", subject_categories, SUBJECT_CATEGORIES
        )
    for name, number in (("approx_subjects", approx_subjects), ("approx_records", approx_records)):
        if number is not None:
            if number < 0:
                raise BreachRefused("negative", f"{name} cannot be negative", field=name)
            new[name] = number
    if occurred_from is not None:
        new["occurred_from"] = _aware(occurred_from, "occurred_from")
    if occurred_to is not None:
        new["occurred_to"] = _aware(occurred_to, "occurred_to")
    if unintelligible is not None:
        if unintelligible and breach.scope_actor_id is not None:
            raise BreachRefused(
                "not_unintelligible",
                "a compromised staff account saw the data decrypted: it was not unintelligible",
                field="unintelligible",
            )
        new["unintelligible"] = unintelligible
    changed = [k for k, v in new.items() if getattr(breach, k) != v]
    if not changed:
        return []
    for k in changed:
        setattr(breach, k, new[k])
    if _any_notice(session, breach):
        breach.phase += 1
        session.add(
            BreachSupplement(
                breach_id=breach.id,
                phase=breach.phase,
                changed=json.dumps(sorted(changed)),
                created_by=actor,
            )
        )
    session.flush()
    audit.record(
        session,
        "breach.update",
        "breach",
        breach.id,
        details={"phase": breach.phase, "fields": "+".join(sorted(changed))},
    )
    return changed


def missing_fields(breach: Breach) -> list[str]:
    """The names of the Art. 33(3) contents still empty (empty when complete)."""
    out = []
    for name in CONTENT_FIELDS:
        value = getattr(breach, name)
        if value is None or value == "" or value == "[]":
            out.append(name)
    return out


def missing_fr(breach: Breach) -> list[str]:
    """The Art. 33(3) items still to come, in French (the notices and the register)."""
    return [_FIELD_FR[name] for name in missing_fields(breach)]


def missing_contents(breach: Breach) -> list[str]:
    """What Art. 33(3) still needs before a notification can go out (empty when complete)."""
    return [_REQUIRED_LABELS[name] for name in missing_fields(breach)]
