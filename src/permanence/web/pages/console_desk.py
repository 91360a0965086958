"""What the console shows beside the purpose's form: the account's instructions during the
call, the caller's recent history for this account (a reasoned, audited read), the known
caller's fields to pre-fill, and the appointment slot asked once.

Kept apart from ``console.py`` (the routes) so that the rules are testable without pages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.calls.model import Call
from permanence.mandates.base import FieldCategory
from permanence.mandates.hours_words import opening_hours_view
from permanence.mandates.mandate import Mandate
from permanence.mandates.oncall import on_call_now
from permanence.messages.model import Appointment, Message
from permanence.subjects import service as subjects

# Why an operator opens a caller's history (an audit detail, and the choice on the page).
HISTORY_REASONS = ("follow_up", "call_back", "same_request")
HISTORY_SHOWN = 5
# The caller's identity fields a purpose may declare, and where the caller's record keeps them.
PREFILLED = {
    "first_name": "first_name",
    "last_name": "last_name",
    "phone": "phone",
    "email": "email",
}
PREFILL_CATEGORIES = (FieldCategory.IDENTITY, FieldCategory.CONTACT)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class OnCallNow:
    name: str
    phone: str
    starts: str
    ends: str


@dataclass(frozen=True)
class Instructions:
    """The account's instructions the operator needs during the call (the call's mandate)."""

    special: str | None
    on_call_now: OnCallNow | None
    on_call_declared: bool
    on_call_rota: list[OnCallNow]
    opening: list[tuple[str, str, tuple[str, ...]]]
    # The mandate's own opening hours and out-of-hours handling in words, when it declares them.
    hours: dict[str, Any] | None = None


def instructions(mandate: Mandate, now: dt.datetime, lang: str = "fr") -> Instructions:
    """Special instructions, the on-call contact in force at ``now`` (the rota's days and
    validity dates included, as the call routing reads them), the hours in words.

    A field a later mandate schema may add (``special_instructions``) is read when present."""
    special = getattr(mandate, "special_instructions", None) or getattr(
        mandate, "instructions", None
    )
    on_call = mandate.on_call
    current = None
    index = on_call_now(mandate, now)
    if index is not None and on_call is not None:
        c = on_call.contacts[index]
        current = OnCallNow(c.name, c.phone, c.from_, c.to)
    # Consecutive days with the same ranges are grouped: ("mon", "fri", ranges).
    opening: list[tuple[str, str, tuple[str, ...]]] = []
    for day in _WEEKDAYS:
        ranges = tuple(mandate.agenda.hours.get(day, ()))
        if not ranges:
            continue
        last = opening[-1] if opening else None
        follows = last is not None and _WEEKDAYS.index(last[1]) == _WEEKDAYS.index(day) - 1
        if last is not None and follows and last[2] == ranges:
            opening[-1] = (last[0], day, ranges)
        else:
            opening.append((day, day, ranges))
    return Instructions(
        special=str(special) if special else None,
        on_call_now=current,
        on_call_declared=on_call is not None,
        on_call_rota=[OnCallNow(c.name, c.phone, c.from_, c.to) for c in on_call.contacts]
        if on_call is not None
        else [],
        opening=opening,
        hours=opening_hours_view(mandate, lang),
    )


def prefill(purpose: Any, caller: dict[str, Any] | None) -> dict[str, str]:
    """The known caller's identity and contact values for the fields this purpose declares
    (only identity/contact fields named like the caller record's; nothing else)."""
    if not caller:
        return {}
    out: dict[str, str] = {}
    for f in purpose.resolved_fields:
        source = PREFILLED.get(f.name)
        value = caller.get(source) if source else None
        if value and f.category in PREFILL_CATEGORIES:
            out[f.name] = str(value)
    return out


def first_empty(fields: list[Any], values: dict[str, str], books: bool) -> str | None:
    """The form control that takes the focus when a purpose is picked."""
    for f in fields:
        if not values.get(f.name):
            return "f_" + str(f.name)
    return "creneau" if books else None


def slot_field(purpose: Any) -> str | None:
    """A booking purpose's date-time field that the chosen slot fills (asked once)."""
    for f in purpose.resolved_fields:
        if str(getattr(f.type, "value", f.type)) == "datetime":
            return str(f.name)
    return None


@dataclass
class History:
    reason: str
    calls: list[Call] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    appointments: list[Appointment] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.calls or self.messages or self.appointments)


def _kept(mandate: Mandate, purpose: str | None, kind: str, since: dt.datetime) -> bool:
    """Whether a record made at ``since`` is still within the mandate's retention."""
    found = [
        p.retention.get(kind) for p in mandate.purposes if purpose is None or p.code == purpose
    ]
    durations = [d for d in found if d is not None]
    if not durations:
        return True
    now = dt.datetime.now(dt.UTC)
    return any(d.add_to(since) > now for d in durations)


def caller_history(session: Session, call: Call, mandate: Mandate, reason: str) -> History:
    """The caller's last calls, messages and appointments for this account, within the
    mandate's retention: metadata only (when, purpose, state), read by index on the caller,
    and audited with the operator's reason (one entry naming the caller)."""
    if reason not in HISTORY_REASONS:
        raise ValueError("unknown reason")
    history = History(reason)
    if call.caller_id is None:
        return history
    # By caller id alone (its index: with the account too, SQLite walks the account's rows in
    # date order), once the caller is known to be of the context's account.
    caller = subjects.get(session, call.caller_id).id
    rows = session.scalars(
        select(Call)
        .where(Call.caller_id == caller, Call.id != call.id)
        .order_by(Call.started_at.desc())
        .limit(HISTORY_SHOWN * 2)
    )
    history.calls = [c for c in rows if _kept(mandate, None, "call_log", c.started_at)][
        :HISTORY_SHOWN
    ]
    msgs = session.scalars(
        select(Message)
        .where(Message.caller_id == caller)
        .order_by(Message.created_at.desc())
        .limit(HISTORY_SHOWN * 2)
    )
    history.messages = [
        m for m in msgs if _kept(mandate, m.purpose, "message", m.acknowledged_at or m.created_at)
    ][:HISTORY_SHOWN]
    appts = session.scalars(
        select(Appointment)
        .where(Appointment.caller_id == caller)
        .order_by(Appointment.starts_at.desc())
        .limit(HISTORY_SHOWN * 2)
    )
    history.appointments = [
        a for a in appts if _kept(mandate, a.purpose, "appointment", a.starts_at)
    ][:HISTORY_SHOWN]
    audit.record(
        session,
        "subject.history_read",
        "caller",
        caller,
        subject_id=caller,
        details={
            "reason": reason,
            "call": str(call.id),
            "calls": len(history.calls),
            "messages": len(history.messages),
            "appointments": len(history.appointments),
        },
    )
    return history


def purpose_labels(mandate: Mandate) -> dict[str, tuple[str, str]]:
    return {p.code: (p.label_fr, p.label_en or p.label_fr) for p in mandate.purposes}
