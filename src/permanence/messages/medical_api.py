"""The operator's break-glass request (need-to-know for health data, messages/medical.py).
Moved from ``needtoknow/api.py`` with the rule it records for (ADR 0037); listed in the same
place of ``web/api.py``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import Field

from permanence.context import Role
from permanence.messages import medical
from permanence.needtoknow import service as needtoknow
from permanence.web import schemas as S
from permanence.web.deps import CurrentRuntime, Principal, require, unit_of_work
from permanence.web.routes import ApiRoute
from permanence.web.schemas import ERRORS

router = APIRouter(prefix="/api/v1", route_class=ApiRoute)
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]


class BreakGlassIn(S.Body):
    reason: str = Field(min_length=needtoknow.MIN_REASON, max_length=1000)


@router.post(
    "/accounts/{account_id}/callers/{caller_id}/break-glass",
    responses=ERRORS,
    tags=["access"],
    status_code=201,
)
def break_glass(
    account_id: uuid.UUID, caller_id: uuid.UUID, body: BreakGlassIn, p: Operator, rt: CurrentRuntime
) -> dict[str, Any]:
    """Record why this caller's medical messages must be opened outside a call with them:
    they open for an hour, and the DPO's access review counts it."""
    with unit_of_work(rt, p, account_id, f"break-glass:{caller_id}") as s:
        row = medical.break_glass(s, caller_id, body.reason)
        return {
            "id": str(row.id),
            "valid_until": (row.opened_at + needtoknow.BREAK_GLASS_VALID).isoformat(),
        }
