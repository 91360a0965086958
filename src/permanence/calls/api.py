"""The operator's calls over the API: open, list, the screen pop, answer, the notice read,
complete (a message taken or an appointment booked during the call: ``messages.call_api``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from permanence.calls import service as calls
from permanence.calls.model import Call
from permanence.web import schemas as S
from permanence.web.deps import AnyOne, CurrentRuntime, Operator, Principal, unit_of_work
from permanence.web.routes import ApiRoute
from permanence.web.schemas import ERRORS

router = APIRouter(prefix="/api/v1", route_class=ApiRoute)


def _call_out(c: Call, known: bool | None = None) -> S.CallOut:
    return S.CallOut(
        id=c.id,
        account_id=c.account_id,
        status=c.status,
        started_at=c.started_at,
        answered_at=c.answered_at,
        ended_at=c.ended_at,
        notice_version=c.notice_version,
        notice_read_at=c.notice_read_at,
        known_caller=known,
        outcome=c.outcome,
        talk_s=c.talk_s,
    )


@router.post("/calls", response_model=S.CallOut, status_code=201, responses=ERRORS, tags=["calls"])
def open_call(body: S.CallIn, p: Operator, rt: CurrentRuntime) -> S.CallOut:
    """A call entered by hand (telephony opens them through its webhooks): the dialled number
    selects the account, the caller is recognised by number."""
    with rt.db.session(p.context("api:call_open")) as s:
        opened = calls.open_call(
            s, rt.keyring, dialled=body.dialled, caller_number=body.caller_number
        )
        return _call_out(opened.call, opened.known_caller)


@router.get(
    "/accounts/{account_id}/calls",
    response_model=list[S.CallOut],
    responses=ERRORS,
    tags=["calls"],
)
def list_calls(
    account_id: uuid.UUID,
    p: AnyOne,
    rt: CurrentRuntime,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[S.CallOut]:
    with unit_of_work(rt, p, account_id, "api:calls", readonly=True) as s:
        return [_call_out(c) for c in calls.recent(s, limit=limit, offset=offset)]


@router.get(
    "/accounts/{account_id}/calls/{call_id}",
    response_model=S.ScreenPop,
    responses=ERRORS,
    tags=["calls"],
)
def screen_pop(
    account_id: uuid.UUID, call_id: uuid.UUID, p: Operator, rt: CurrentRuntime
) -> S.ScreenPop:
    """The screen pop: account, greeting and notice, purposes, recording, known caller."""
    with unit_of_work(rt, p, account_id, f"call:{call_id}") as s:
        return S.ScreenPop.model_validate(
            calls.screen_pop(s, rt.keyring, calls.get_call(s, call_id))
        )


def _call_action(
    rt: CurrentRuntime, p: Principal, account_id: uuid.UUID, call_id: uuid.UUID, action: str
) -> S.CallOut:
    with unit_of_work(rt, p, account_id, f"call:{call_id}") as s:
        call = calls.get_call(s, call_id)
        {"answer": calls.answer, "notice-read": calls.mark_notice_read, "complete": calls.complete}[
            action
        ](s, call)
        return _call_out(call)


@router.post(
    "/accounts/{account_id}/calls/{call_id}/answer",
    response_model=S.CallOut,
    responses=ERRORS,
    tags=["calls"],
)
def answer(account_id: uuid.UUID, call_id: uuid.UUID, p: Operator, rt: CurrentRuntime) -> S.CallOut:
    return _call_action(rt, p, account_id, call_id, "answer")


@router.post(
    "/accounts/{account_id}/calls/{call_id}/notice-read",
    response_model=S.CallOut,
    responses=ERRORS,
    tags=["calls"],
)
def notice_read(
    account_id: uuid.UUID, call_id: uuid.UUID, p: Operator, rt: CurrentRuntime
) -> S.CallOut:
    """The operator read the layer-1 notice; the call keeps its version."""
    return _call_action(rt, p, account_id, call_id, "notice-read")


@router.post(
    "/accounts/{account_id}/calls/{call_id}/complete",
    response_model=S.CallOut,
    responses=ERRORS,
    tags=["calls"],
)
def complete(
    account_id: uuid.UUID, call_id: uuid.UUID, p: Operator, rt: CurrentRuntime
) -> S.CallOut:
    return _call_action(rt, p, account_id, call_id, "complete")
