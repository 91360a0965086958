"""The account's messages over the API: list, read, acknowledge, where they were delivered and
who received them (Art. 19)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from permanence.context import Role
from permanence.errors import ValidationFailed
from permanence.messages import service as messages
from permanence.messages.model import Appointment, Message
from permanence.web import schemas as S
from permanence.web.deps import READING, CurrentRuntime, Principal, require, unit_of_work
from permanence.web.routes import ApiRoute
from permanence.web.schemas import ERRORS

router = APIRouter(prefix="/api/v1", route_class=ApiRoute)
MessageReader = Annotated[Principal, Depends(require(*READING, scope="messages:read"))]
MessageWriter = Annotated[
    Principal, Depends(require(Role.CLIENT, Role.SUPERVISOR, scope="messages:write"))
]


def _message_out(m: Message, fields: dict[str, Any] | None = None) -> S.MessageOut:
    return S.MessageOut(
        id=m.id,
        account_id=m.account_id,
        call_id=m.call_id,
        caller_id=m.caller_id,
        purpose=m.purpose,
        status=m.status,
        urgent=m.urgent,
        created_at=m.created_at,
        acknowledged_at=m.acknowledged_at,
        fields=fields,
    )


def _appointment_out(a: Appointment, fields: dict[str, Any] | None = None) -> S.AppointmentOut:
    return S.AppointmentOut(
        id=a.id,
        account_id=a.account_id,
        caller_id=a.caller_id,
        call_id=a.call_id,
        purpose=a.purpose,
        status=a.status,
        starts_at=a.starts_at,
        ends_at=a.ends_at,
        fields=fields,
    )


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None:
        raise ValidationFailed(f"{name} needs a time zone offset (e.g. 2030-01-07T09:00:00+01:00)")
    return value


# -- messages ------------------------------------------------------------------------------


@router.get(
    "/accounts/{account_id}/messages",
    response_model=list[S.MessageOut],
    responses=ERRORS,
    tags=["messages"],
)
def list_messages(
    account_id: uuid.UUID,
    p: MessageReader,
    rt: CurrentRuntime,
    status: Annotated[str | None, Query(pattern="^(new|acknowledged)$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[S.MessageOut]:
    """Messages, newest first, without their content (open one to read it)."""
    with unit_of_work(rt, p, account_id, "api:messages", readonly=True) as s:
        return [
            _message_out(m)
            for m in messages.list_messages(s, status=status, limit=limit, offset=offset)
        ]


@router.get(
    "/accounts/{account_id}/messages/{message_id}",
    response_model=S.MessageOut,
    responses=ERRORS,
    tags=["messages"],
)
def read_message(
    account_id: uuid.UUID, message_id: uuid.UUID, p: MessageReader, rt: CurrentRuntime
) -> S.MessageOut:
    """A message with its fields: an audited read of personal data."""
    with unit_of_work(rt, p, account_id, f"message:{message_id}") as s:
        msg = messages.get_message(s, message_id)
        return _message_out(msg, messages.read_message(s, rt.keyring, msg))


@router.post(
    "/accounts/{account_id}/messages/{message_id}/acknowledge",
    response_model=S.MessageOut,
    responses=ERRORS,
    tags=["messages"],
)
def acknowledge(
    account_id: uuid.UUID, message_id: uuid.UUID, p: MessageWriter, rt: CurrentRuntime
) -> S.MessageOut:
    with unit_of_work(rt, p, account_id, f"message:{message_id}") as s:
        return _message_out(messages.acknowledge(s, message_id))


@router.get(
    "/accounts/{account_id}/messages/{message_id}/deliveries",
    response_model=list[S.DeliveryOut],
    responses=ERRORS,
    tags=["messages"],
)
def message_deliveries(
    account_id: uuid.UUID, message_id: uuid.UUID, p: MessageReader, rt: CurrentRuntime
) -> list[S.DeliveryOut]:
    """The delivery ledger of a message: each channel's sent, delivered, viewed, acknowledged."""
    from permanence.delivery import ledger as delivery

    with unit_of_work(rt, p, account_id, f"message:{message_id}", readonly=True) as s:
        return [
            S.DeliveryOut(
                id=e.delivery_id,
                event=e.event,
                channel=e.channel,
                escalation_step=e.escalation_step,
                status=e.status,
                attempts=e.attempts,
                last_error=e.last_error,
                created_at=e.created_at,
                sent_at=e.sent_at,
                delivered_at=e.delivered_at,
                viewed_at=e.viewed_at,
                acknowledged_at=e.acknowledged_at,
                failed_at=e.failed_at,
            )
            for e in delivery.ledger(s, message_id)
        ]


@router.get(
    "/accounts/{account_id}/messages/{message_id}/recipients",
    response_model=list[S.RecipientOut],
    responses=ERRORS,
    tags=["messages"],
)
def message_recipients(
    account_id: uuid.UUID, message_id: uuid.UUID, p: MessageReader, rt: CurrentRuntime
) -> list[S.RecipientOut]:
    """Who received the message (Art. 19: the recipients a data subject may ask for)."""
    from permanence.delivery import ledger as delivery

    with unit_of_work(rt, p, account_id, f"message:{message_id}", readonly=True) as s:
        return [
            S.RecipientOut(
                channel=r.channel,
                description=r.description,
                first_received_at=r.first_received_at,
            )
            for r in delivery.recipients_of(s, message_id)
        ]
