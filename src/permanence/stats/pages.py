"""Server-rendered supervision pages: the live board (refreshes itself, no JavaScript) and an
account's statistics with its charts and usage reports. A small standalone layout for now
(the pages of issue 4 bring the shared one)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from permanence.accounts.service import get_account
from permanence.context import Role
from permanence.render import PARIS, render
from permanence.stats import service as stats
from permanence.web.deps import CurrentRuntime, Principal, require, unit_of_work

router = APIRouter(include_in_schema=False)

Supervisor = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.ADMIN))]
Reader = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.DPO, Role.ADMIN, Role.CLIENT))]
STATE_FR = {
    "free": "libre",
    "on_call": "en appel",
    "wrap_up": "post-appel",
    "break": "en pause",
    "offline": "hors ligne",
}
REFRESH_S = 15
# No script at all; images (the SVG charts) from here only.
CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def _page(template: str, **values: object) -> HTMLResponse:
    html = render("permanence.stats", template, duration=duration, states=STATE_FR, **values)
    return HTMLResponse(
        html,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": CSP,
        },
    )


@router.get("/supervision", response_class=HTMLResponse)
def board_page(p: Supervisor, rt: CurrentRuntime) -> HTMLResponse:
    today = dt.datetime.now(dt.UTC).astimezone(PARIS).date()
    period = stats.Period.of(today - dt.timedelta(days=6), today)
    with rt.db.session(p.context("page:board"), readonly=True) as s:
        board = stats.board(s)
        team = stats.team_statistics(s, period) if p.role == Role.SUPERVISOR else None
    return _page("board.html", board=board, team=team, period=period, refresh=REFRESH_S)


@router.get("/supervision/accounts/{account_id}", response_class=HTMLResponse)
def account_page(
    account_id: uuid.UUID,
    p: Reader,
    rt: CurrentRuntime,
    start: Annotated[dt.date | None, Query()] = None,
    end: Annotated[dt.date | None, Query()] = None,
) -> HTMLResponse:
    period = stats.Period.of(start, end)
    with unit_of_work(rt, p, account_id, "page:stats", readonly=True) as s:
        account = get_account(s, account_id)
        figures = stats.account_statistics(s, account_id, period)
    first = period.last.replace(day=1)
    months = []
    for _ in range(3):
        months.append(first.strftime("%Y-%m"))
        first = (first - dt.timedelta(days=1)).replace(day=1)
    query = f"start={period.first.isoformat()}&end={period.last.isoformat()}"
    return _page(
        "account.html", account=account, s=figures, period=period, months=months, query=query
    )
