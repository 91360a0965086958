"""Consents over the API: given during a call (the wording's version read), withdrawn, listed
for a caller."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from permanence.consents import service as consents
from permanence.consents.model import Consent
from permanence.context import Role
from permanence.web import schemas as S
from permanence.web.deps import READING, CurrentRuntime, Operator, Principal, require, unit_of_work
from permanence.web.routes import ApiRoute
from permanence.web.schemas import ERRORS

router = APIRouter(prefix="/api/v1", route_class=ApiRoute)


@router.post(
    "/accounts/{account_id}/calls/{call_id}/consents",
    response_model=S.ConsentOut,
    status_code=201,
    responses=ERRORS,
    tags=["consents"],
)
def give_consent(
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    body: S.ConsentIn,
    p: Operator,
    rt: CurrentRuntime,
) -> S.ConsentOut:
    """Record the caller's consent to a purpose's wording (the version read)."""
    with unit_of_work(rt, p, account_id, f"call:{call_id}") as s:
        c = consents.give(
            s,
            call_id=call_id,
            purpose=body.purpose,
            wording_version=body.wording_version,
            channel=body.channel,
        )
        return _consent_out(c)


def _consent_out(c: Consent) -> S.ConsentOut:
    return S.ConsentOut(
        id=c.id,
        caller_id=c.caller_id,
        call_id=c.call_id,
        purpose=c.purpose,
        wording_version=c.wording_version,
        channel=c.channel,
        given_at=c.given_at,
        withdrawn_at=c.withdrawn_at,
    )


@router.post(
    "/accounts/{account_id}/consents/{consent_id}/withdraw",
    response_model=S.ConsentOut,
    responses=ERRORS,
    tags=["consents"],
)
def withdraw_consent(
    account_id: uuid.UUID,
    consent_id: uuid.UUID,
    body: S.WithdrawIn,
    p: Annotated[Principal, Depends(require(Role.CLIENT, Role.OPERATOR, Role.SUPERVISOR))],
    rt: CurrentRuntime,
) -> S.ConsentOut:
    """Withdrawal in one action: processing under this consent stops now."""
    with unit_of_work(rt, p, account_id, f"consent:{consent_id}") as s:
        return _consent_out(consents.withdraw(s, consent_id, channel=body.channel))


@router.get(
    "/accounts/{account_id}/callers/{caller_id}/consents",
    response_model=list[S.ConsentOut],
    responses=ERRORS,
    tags=["consents"],
)
def caller_consents(
    account_id: uuid.UUID,
    caller_id: uuid.UUID,
    p: Annotated[Principal, Depends(require(*READING))],
    rt: CurrentRuntime,
) -> list[S.ConsentOut]:
    from permanence.subjects import service as subjects

    with unit_of_work(rt, p, account_id, f"caller:{caller_id}", readonly=True) as s:
        subjects.get(s, caller_id)
        return [_consent_out(c) for c in consents.of_caller(s, caller_id)]
