"""The client's agenda: free slots, moving and cancelling appointments, the iCalendar feed.

Booking itself is ``messages.service.book_appointment`` (validated against the purpose,
sealed, conflict-checked). Times are stored in UTC; opening hours come from the mandate's
``agenda`` section in the account's time zone.
"""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.service import get_account, mandate_version
from permanence.audit import service as audit
from permanence.crypto.keyring import Keyring
from permanence.db import ctx_of, utcnow
from permanence.errors import Conflict, NotFound, ValidationFailed
from permanence.messages.model import Appointment

MAX_RANGE = dt.timedelta(days=366)


def get(session: Session, appointment_id: uuid.UUID) -> Appointment:
    appt = session.get(Appointment, appointment_id)
    if appt is None or appt.account_id != ctx_of(session).account_id:
        raise NotFound("no such appointment")
    return appt


def between(session: Session, start: dt.datetime, end: dt.datetime) -> list[Appointment]:
    """Booked appointments of the context's account overlapping [start, end)."""
    account_id = ctx_of(session).require_account()
    if end <= start or end - start > MAX_RANGE:
        raise ValidationFailed("the period must end after it starts and last at most a year")
    return list(
        session.scalars(
            select(Appointment)
            .where(
                Appointment.account_id == account_id,
                Appointment.status == "booked",
                Appointment.starts_at < end,
                Appointment.ends_at > start,
            )
            .order_by(Appointment.starts_at)
        )
    )


def free_slots(session: Session, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
    """Free slots of a day, from the mandate's opening hours, minus what is booked."""
    account_id = ctx_of(session).require_account()
    _row, mandate = mandate_version(session, account_id)
    agenda = mandate.agenda
    tz = ZoneInfo(agenda.timezone)
    step = dt.timedelta(minutes=agenda.slot_minutes)
    candidates: list[tuple[dt.datetime, dt.datetime]] = []
    for opens, closes in agenda.ranges(day.weekday()):
        t = dt.datetime.combine(day, opens, tz)
        end = dt.datetime.combine(day, closes, tz)
        while t + step <= end:
            candidates.append((t.astimezone(dt.UTC), (t + step).astimezone(dt.UTC)))
            t += step
    if not candidates:
        return []
    booked = between(session, candidates[0][0], candidates[-1][1])
    now = utcnow()
    return [
        (s, e)
        for s, e in candidates
        if s >= now and not any(a.starts_at < e and a.ends_at > s for a in booked)
    ]


def move(
    session: Session, appointment_id: uuid.UUID, starts_at: dt.datetime, ends_at: dt.datetime
) -> Appointment:
    appt = get(session, appointment_id)
    if appt.status != "booked":
        raise Conflict("only a booked appointment can be moved")
    if ends_at <= starts_at:
        raise ValidationFailed("an appointment must end after it starts")
    clash = session.scalars(
        select(Appointment.id).where(
            Appointment.account_id == appt.account_id,
            Appointment.status == "booked",
            Appointment.id != appt.id,
            Appointment.starts_at < ends_at,
            Appointment.ends_at > starts_at,
        )
    ).first()
    if clash is not None:
        raise Conflict("this slot overlaps another appointment")
    appt.starts_at, appt.ends_at = starts_at, ends_at
    audit.record(session, "appointment.move", "appointment", appt.id, subject_id=appt.caller_id)
    return appt


def cancel(session: Session, appointment_id: uuid.UUID) -> Appointment:
    appt = get(session, appointment_id)
    if appt.status != "booked":
        raise Conflict("this appointment is not booked")
    appt.status = "cancelled"
    audit.record(session, "appointment.cancel", "appointment", appt.id, subject_id=appt.caller_id)
    return appt


def read(session: Session, keyring: Keyring, appt: Appointment) -> dict[str, object]:
    """The appointment's sealed fields, opened: an audited read of personal data."""
    from permanence.staff.training import require_trained

    require_trained(session, ctx_of(session))
    cipher = keyring.cipher(session, appt.account_id, appt.caller_id)
    fields: dict[str, object] = cipher.open_json(
        "appointments", "payload", appt.id, appt.payload_sealed
    )
    audit.record(session, "appointment.read", "appointment", appt.id, subject_id=appt.caller_id)
    return fields


# What the feed may carry: who, not why (no reason, no note, no health detail).
FEED_FIELDS = ("first_name", "last_name")


def ical_feed(session: Session, keyring: Keyring, start: dt.datetime, end: dt.datetime) -> bytes:
    """The account's agenda as iCalendar, with minimal data: times and the caller's name."""
    account_id = ctx_of(session).require_account()
    account = get_account(session, account_id)
    from icalendar import Calendar, Event  # only for the feed: not on every start (issue 24)

    cal = Calendar()
    cal.add("prodid", "-//Permanence//agenda//FR")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", f"Rendez-vous — {account.name}")
    appointments = between(session, start, end)
    for appt in appointments:
        cipher = keyring.cipher(session, appt.account_id, appt.caller_id)
        fields = cipher.open_json("appointments", "payload", appt.id, appt.payload_sealed)
        who = " ".join(str(fields[k]) for k in FEED_FIELDS if fields.get(k))
        event = Event()
        event.add("uid", f"{appt.id}@permanence")
        event.add("dtstamp", appt.created_at)
        event.add("dtstart", appt.starts_at)
        event.add("dtend", appt.ends_at)
        event.add("summary", f"Rendez-vous : {who}" if who else "Rendez-vous")
        cal.add_component(event)
    audit.record(
        session, "agenda.feed_read", "account", account_id, details={"events": len(appointments)}
    )
    return bytes(cal.to_ical())


def overview(
    session: Session, keyring: Keyring, start: dt.datetime, end: dt.datetime
) -> list[tuple[Appointment, str]]:
    """The agenda view: each booked appointment with who it is for (the feed's fields only,
    never why); one audited read for the view."""
    account_id = ctx_of(session).require_account()
    out: list[tuple[Appointment, str]] = []
    appointments = between(session, start, end)
    for appt in appointments:
        cipher = keyring.cipher(session, appt.account_id, appt.caller_id)
        fields = cipher.open_json("appointments", "payload", appt.id, appt.payload_sealed)
        out.append((appt, " ".join(str(fields[k]) for k in FEED_FIELDS if fields.get(k))))
    audit.record(
        session, "agenda.viewed", "account", account_id, details={"events": len(appointments)}
    )
    return out
