"""Server-rendered supervision pages: the live board (reloaded by app.js; without JavaScript,
by a meta refresh inside <noscript>) and an account's statistics with its charts and usage
reports, on the interface's shared layout."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from permanence.accounts.service import get_account
from permanence.context import Role
from permanence.render import PARIS
from permanence.stats import service as stats
from permanence.web.deps import CurrentRuntime, unit_of_work
from permanence.web.pages.render import Viewer, render, roles

router = APIRouter(include_in_schema=False)

Supervisor = Annotated[Viewer, roles(Role.SUPERVISOR, Role.ADMIN)]
Reader = Annotated[Viewer, roles(Role.SUPERVISOR, Role.DPO, Role.ADMIN, Role.CLIENT)]
REFRESH_S = 15


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def _page(request: Request, viewer: Viewer, template: str, **values: Any) -> HTMLResponse:
    response = render(request, f"supervision/{template}", viewer, duration=duration, **values)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/supervision", response_class=HTMLResponse)
def board_page(request: Request, p: Supervisor, rt: CurrentRuntime) -> HTMLResponse:
    today = dt.datetime.now(dt.UTC).astimezone(PARIS).date()
    period = stats.Period.of(today - dt.timedelta(days=6), today)
    with rt.db.session(p.context("page:board"), readonly=True) as s:
        board = stats.board(s)
        team = stats.team_statistics(s, period) if p.role == Role.SUPERVISOR else None
    updated = board.at.astimezone(PARIS).strftime("%H:%M:%S")
    return _page(
        request,
        p,
        "board.html",
        board=board,
        team=team,
        period=period,
        refresh=REFRESH_S,
        updated_at=updated,
    )


@router.get("/supervision/accounts/{account_id}", response_class=HTMLResponse)
def account_page(
    request: Request,
    account_id: uuid.UUID,
    p: Reader,
    rt: CurrentRuntime,
    start: Annotated[dt.date | None, Query()] = None,
    end: Annotated[dt.date | None, Query()] = None,
) -> HTMLResponse:
    period = stats.Period.of(start, end)
    with unit_of_work(rt, p.principal, account_id, "page:stats", readonly=True) as s:
        account = get_account(s, account_id)
        figures = stats.account_statistics(s, account_id, period)
    first = period.last.replace(day=1)
    months = []
    for _ in range(3):
        months.append(first.strftime("%Y-%m"))
        first = (first - dt.timedelta(days=1)).replace(day=1)
    query = f"start={period.first.isoformat()}&end={period.last.isoformat()}"
    return _page(
        request,
        p,
        "account.html",
        account=account,
        s=figures,
        period=period,
        months=months,
        query=query,
    )
