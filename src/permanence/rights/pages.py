"""Rights requests in the pages: the client's own (portal), with its countdown to the due
date (Art. 12(3)); overdue ones first and marked. The DPO's desk is `desk_pages.py` and
`request_pages.py`, the callers' public page `public_pages.py`: web/app.py adds their routes
before these, out of the API schema."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from permanence.context import Role
from permanence.db import utcnow
from permanence.rights import clock
from permanence.rights import service as rights
from permanence.rights.model import RightsRequest
from permanence.web.deps import CurrentRuntime, unit_of_work
from permanence.web.pages.render import Viewer, render, roles

router = APIRouter(include_in_schema=False)
Client = Annotated[Viewer, roles(Role.CLIENT)]

Row = tuple[str | None, RightsRequest, int, bool]


def _rows(requests: list[RightsRequest], account: str | None) -> list[Row]:
    now = utcnow()
    return [(account, r, clock.days_left(r.due_at, now), rights.is_closed(r)) for r in requests]


def _page(
    request: Request, viewer: Viewer, template: str, rows: list[Row], *, show_account: bool
) -> Response:
    return render(
        request,
        template,
        viewer,
        rows=rows,
        show_account=show_account,
    )


@router.get("/portail/droits", response_class=HTMLResponse)
def portal_rights(request: Request, viewer: Client, rt: CurrentRuntime) -> Response:
    account_id = viewer.principal.account_id
    assert account_id is not None
    with unit_of_work(rt, viewer.principal, account_id, "portal:rights", readonly=True) as s:
        rows = _rows(rights.list_requests(s), None)
    return _page(request, viewer, "portal/rights.html", rows, show_account=False)
