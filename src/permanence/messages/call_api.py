"""A message taken or an appointment booked during a call, over the API. Their paths are the
call's (``/accounts/{id}/calls/{id}/messages``, tagged ``calls``); ``web/api.py`` lists them
right after the calls' routes. They live here because they are the messages' use cases: the
calls package does not import messages (ADR 0021, the no-circle contracts)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sqlalchemy.orm import Session

from permanence.calls.model import Call
from permanence.errors import ValidationFailed
from permanence.messages import service as messages
from permanence.messages.api import _appointment_out, _aware, _message_out
from permanence.web import schemas as S
from permanence.web.deps import CurrentRuntime, Operator, unit_of_work
from permanence.web.routes import ApiRoute
from permanence.web.schemas import ERRORS

router = APIRouter(prefix="/api/v1", route_class=ApiRoute)


def _with_caller(s: Session, call_id: uuid.UUID) -> tuple[Call, uuid.UUID]:
    """The call and its caller; a call without one (an unknown number) takes no record. The
    call's caller, mandate version and the caller's key come in the same statement."""
    call = messages.call_for_record(s, call_id)
    if call.caller_id is None:
        raise ValidationFailed("this call has no caller")
    return call, call.caller_id


@router.post(
    "/accounts/{account_id}/calls/{call_id}/messages",
    response_model=S.MessageOut,
    status_code=201,
    responses=ERRORS,
    tags=["calls"],
)
def take_message(
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    body: S.MessageIn,
    p: Operator,
    rt: CurrentRuntime,
) -> S.MessageOut:
    """Take a message under a purpose: only the purpose's fields, validated, sealed."""
    with unit_of_work(rt, p, account_id, f"call:{call_id}") as s:
        call, caller_id = _with_caller(s, call_id)
        msg = messages.take_message(
            s,
            rt.keyring,
            caller_id=caller_id,
            purpose=body.purpose,
            values=body.values,
            call_id=call.id,
            confirm_undeclared=body.confirm_undeclared,
            urgent=body.urgent,
        )
        return _message_out(msg)


@router.post(
    "/accounts/{account_id}/calls/{call_id}/appointments",
    response_model=S.AppointmentOut,
    status_code=201,
    responses=ERRORS,
    tags=["calls"],
)
def book(
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    body: S.AppointmentIn,
    p: Operator,
    rt: CurrentRuntime,
) -> S.AppointmentOut:
    with unit_of_work(rt, p, account_id, f"call:{call_id}") as s:
        call, caller_id = _with_caller(s, call_id)
        appt = messages.book_appointment(
            s,
            rt.keyring,
            caller_id=caller_id,
            purpose=body.purpose,
            starts_at=_aware(body.starts_at, "starts_at"),
            ends_at=_aware(body.ends_at, "ends_at"),
            values=body.values,
            call_id=call.id,
            confirm_undeclared=body.confirm_undeclared,
        )
        return _appointment_out(appt)
