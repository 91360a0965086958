"""The agenda over the API: appointments listed, read, moved, cancelled; free slots; the
calendar feed."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from permanence.context import Role
from permanence.messages import agenda
from permanence.messages.api import _appointment_out, _aware
from permanence.web import schemas as S
from permanence.web.deps import READING, CurrentRuntime, Principal, require, unit_of_work
from permanence.web.routes import ApiRoute
from permanence.web.schemas import ERRORS

router = APIRouter(prefix="/api/v1", route_class=ApiRoute)
AgendaReader = Annotated[Principal, Depends(require(*READING, scope="appointments:read"))]
AgendaWriter = Annotated[
    Principal,
    Depends(require(Role.CLIENT, Role.OPERATOR, Role.SUPERVISOR, scope="appointments:write")),
]
CalendarReader = Annotated[Principal, Depends(require(Role.CLIENT, scope="calendar:read"))]


@router.get(
    "/accounts/{account_id}/appointments",
    response_model=list[S.AppointmentOut],
    responses=ERRORS,
    tags=["agenda"],
)
def list_appointments(
    account_id: uuid.UUID,
    p: AgendaReader,
    rt: CurrentRuntime,
    start: dt.datetime,
    end: dt.datetime,
) -> list[S.AppointmentOut]:
    with unit_of_work(rt, p, account_id, "api:agenda", readonly=True) as s:
        return [
            _appointment_out(a)
            for a in agenda.between(s, _aware(start, "start"), _aware(end, "end"))
        ]


@router.get(
    "/accounts/{account_id}/appointments/{appointment_id}",
    response_model=S.AppointmentOut,
    responses=ERRORS,
    tags=["agenda"],
)
def read_appointment(
    account_id: uuid.UUID, appointment_id: uuid.UUID, p: AgendaReader, rt: CurrentRuntime
) -> S.AppointmentOut:
    with unit_of_work(rt, p, account_id, f"appointment:{appointment_id}") as s:
        appt = agenda.get(s, appointment_id)
        return _appointment_out(appt, agenda.read(s, rt.keyring, appt))


@router.post(
    "/accounts/{account_id}/appointments/{appointment_id}/move",
    response_model=S.AppointmentOut,
    responses=ERRORS,
    tags=["agenda"],
)
def move_appointment(
    account_id: uuid.UUID,
    appointment_id: uuid.UUID,
    body: S.MoveIn,
    p: AgendaWriter,
    rt: CurrentRuntime,
) -> S.AppointmentOut:
    with unit_of_work(rt, p, account_id, f"appointment:{appointment_id}") as s:
        return _appointment_out(
            agenda.move(
                s,
                appointment_id,
                _aware(body.starts_at, "starts_at"),
                _aware(body.ends_at, "ends_at"),
            )
        )


@router.post(
    "/accounts/{account_id}/appointments/{appointment_id}/cancel",
    response_model=S.AppointmentOut,
    responses=ERRORS,
    tags=["agenda"],
)
def cancel_appointment(
    account_id: uuid.UUID, appointment_id: uuid.UUID, p: AgendaWriter, rt: CurrentRuntime
) -> S.AppointmentOut:
    with unit_of_work(rt, p, account_id, f"appointment:{appointment_id}") as s:
        return _appointment_out(agenda.cancel(s, appointment_id))


@router.get(
    "/accounts/{account_id}/availability",
    response_model=list[S.SlotOut],
    responses=ERRORS,
    tags=["agenda"],
)
def availability(
    account_id: uuid.UUID, day: dt.date, p: AgendaReader, rt: CurrentRuntime
) -> list[S.SlotOut]:
    """Free slots of a day, from the mandate's opening hours."""
    with unit_of_work(rt, p, account_id, "api:availability", readonly=True) as s:
        return [S.SlotOut(starts_at=a, ends_at=b) for a, b in agenda.free_slots(s, day)]


@router.get(
    "/accounts/{account_id}/calendar.ics",
    responses=ERRORS,
    tags=["agenda"],
    response_class=Response,
)
def calendar(account_id: uuid.UUID, p: CalendarReader, rt: CurrentRuntime) -> Response:
    """iCalendar feed (authenticate with an API key holding calendar:read): times and who,
    never why."""
    now = dt.datetime.now(dt.UTC)
    with unit_of_work(rt, p, account_id, "api:calendar") as s:
        body = agenda.ical_feed(
            s, rt.keyring, now - dt.timedelta(days=30), now + dt.timedelta(days=180)
        )
    return Response(body, media_type="text/calendar; charset=utf-8")
