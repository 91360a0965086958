"""Supervision and reporting routes under /api/v1: the live board, presence, statistics,
charts (SVG) and the monthly usage report (JSON, CSV, PDF). Each route parses, opens one unit
of work, calls one service, renders."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel

from permanence.calls import presence
from permanence.context import Role
from permanence.errors import NotFound
from permanence.render import PARIS
from permanence.stats import service as stats
from permanence.stats import usage
from permanence.web.deps import CurrentRuntime, Principal, require, unit_of_work
from permanence.web.routes import ApiRoute
from permanence.web.schemas import ERRORS

router = APIRouter(prefix="/api/v1", route_class=ApiRoute)

Supervisor = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.ADMIN))]
Answerer = Annotated[Principal, Depends(require(Role.OPERATOR, Role.SUPERVISOR))]
StaffStatsReader = Annotated[
    Principal, Depends(require(Role.OPERATOR, Role.SUPERVISOR, Role.DPO, Role.ADMIN, Role.CLIENT))
]
AccountStatsReader = Annotated[
    Principal, Depends(require(Role.SUPERVISOR, Role.DPO, Role.ADMIN, Role.CLIENT))
]
Start = Annotated[dt.date | None, Query(description="First day (Paris time), YYYY-MM-DD")]
End = Annotated[dt.date | None, Query(description="Last day, included")]
Month = Annotated[str, Path(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")]
SVG = "image/svg+xml"
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/board", responses=ERRORS, tags=["supervision"])
def live_board(p: Supervisor, rt: CurrentRuntime) -> dict[str, Any]:
    """Calls waiting per account, signed-in operators and their state, the last hour."""
    with rt.db.session(p.context("api:board"), readonly=True) as s:
        return stats.board(s).as_dict()


@router.get("/presence", responses=ERRORS, tags=["supervision"])
def my_presence(p: Answerer, rt: CurrentRuntime) -> dict[str, Any]:
    with rt.db.session(p.context("api:presence"), readonly=True) as s:
        row = presence.current(s)
        if row is None:
            return {"state": "free", "since": None}
        return {"state": row.state, "since": row.since.isoformat()}


class PresenceIn(BaseModel):
    state: Literal["free", "break", "offline"]


@router.post("/presence", responses=ERRORS, tags=["supervision"])
def set_presence(body: PresenceIn, p: Answerer, rt: CurrentRuntime) -> dict[str, Any]:
    """The operator's own state: ``free``, ``break`` or ``offline`` (calls set the others)."""
    with rt.db.session(p.context("api:presence")) as s:
        row = presence.set_state(s, body.state)
        return {"state": row.state, "since": row.since.isoformat()}


@router.get("/operators/stats", responses=ERRORS, tags=["supervision"])
def team_stats(
    p: StaffStatsReader, rt: CurrentRuntime, start: Start = None, end: End = None
) -> list[dict[str, Any]]:
    """Every operator's aggregates (supervisors only)."""
    with rt.db.session(p.context("api:operator_stats"), readonly=True) as s:
        return [o.as_dict() for o in stats.team_statistics(s, stats.Period.of(start, end))]


@router.get("/operators/{user_id}/stats", responses=ERRORS, tags=["supervision"])
def operator_stats(
    user_id: uuid.UUID,
    p: StaffStatsReader,
    rt: CurrentRuntime,
    start: Start = None,
    end: End = None,
) -> dict[str, Any]:
    """One operator's aggregates: the operator themself, or a supervisor."""
    with rt.db.session(p.context("api:operator_stats"), readonly=True) as s:
        return stats.operator_statistics(s, user_id, stats.Period.of(start, end)).as_dict()


@router.get("/accounts/{account_id}/stats", responses=ERRORS, tags=["supervision"])
def account_stats(
    account_id: uuid.UUID,
    p: AccountStatsReader,
    rt: CurrentRuntime,
    start: Start = None,
    end: End = None,
) -> dict[str, Any]:
    """Every figure of docs/statistics.md for the account and period (default: 30 days)."""
    period = stats.Period.of(start, end)
    with unit_of_work(rt, p, account_id, "api:stats", readonly=True) as s:
        return stats.account_statistics(s, account_id, period).as_dict()


@router.get(
    "/accounts/{account_id}/charts/{chart}.svg",
    tags=["supervision"],
    response_class=Response,
    responses={**ERRORS, 200: {"content": {SVG: {}}}},
)
def chart(
    account_id: uuid.UUID,
    chart: str,
    p: AccountStatsReader,
    rt: CurrentRuntime,
    start: Start = None,
    end: End = None,
    lang: Annotated[
        Literal["fr", "en"], Query(description="Language of the chart's words (fr, en)")
    ] = "fr",
) -> Response:
    """A chart as SVG: volume-by-hour, volume-by-day, answer-times, abandonment, trend."""
    from permanence.stats import charts  # pygal: only when a chart is drawn (issue 24)

    draw = charts.CHARTS.get(chart)
    if draw is None:
        raise NotFound("no such chart; charts: " + ", ".join(charts.CHARTS))
    if chart == "trend" and start is None:
        end = end or dt.datetime.now(dt.UTC).astimezone(PARIS).date()
        start = end - dt.timedelta(days=charts.TREND_DAYS - 1)
    period = stats.Period.of(start, end)
    with unit_of_work(rt, p, account_id, "api:stats", readonly=True) as s:
        figures = stats.account_statistics(s, account_id, period)
    return Response(draw(figures, lang), media_type=SVG, headers=NO_STORE)


# The CSV and PDF routes come before the JSON one: "{month}" alone would also match them.
@router.get(
    "/accounts/{account_id}/usage/{month}.csv",
    tags=["supervision"],
    response_class=Response,
    responses={**ERRORS, 200: {"content": {"text/csv": {}}}},
)
def usage_csv(
    account_id: uuid.UUID, month: Month, p: AccountStatsReader, rt: CurrentRuntime
) -> Response:
    with unit_of_work(rt, p, account_id, "api:usage", readonly=True) as s:
        report = usage.usage_report(s, account_id, month)
    name = f"usage-{report.account_slug}-{report.month}.csv"
    return Response(
        usage.to_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', **NO_STORE},
    )


@router.get(
    "/accounts/{account_id}/usage/{month}.pdf",
    tags=["supervision"],
    response_class=Response,
    responses={**ERRORS, 200: {"content": {"application/pdf": {}}}},
)
def usage_pdf(
    account_id: uuid.UUID, month: Month, p: AccountStatsReader, rt: CurrentRuntime
) -> Response:
    with unit_of_work(rt, p, account_id, "api:usage", readonly=True) as s:
        report = usage.usage_report(s, account_id, month)
    name = f"usage-{report.account_slug}-{report.month}.pdf"
    return Response(
        usage.to_pdf(report, rt.settings.provider_name),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"', **NO_STORE},
    )


@router.get("/accounts/{account_id}/usage/{month}", responses=ERRORS, tags=["supervision"])
def usage_json(
    account_id: uuid.UUID, month: Month, p: AccountStatsReader, rt: CurrentRuntime
) -> dict[str, Any]:
    """The month's usage of the account: the basis of the invoice."""
    with unit_of_work(rt, p, account_id, "api:usage", readonly=True) as s:
        return usage.usage_report(s, account_id, month).as_dict()
