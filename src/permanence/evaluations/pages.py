"""Call evaluation pages (issue 22): the list (an operator's own grids; every grid, and the
recorded calls still to evaluate, for supervisors and administrators) and a supervisor's
grid of one call, with its recording. Client users have no page here: the grids are the
provider's own processing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from permanence.accounts.model import Account
from permanence.context import Role
from permanence.errors import ValidationFailed
from permanence.evaluations import service as evaluations
from permanence.evaluations.model import Evaluation
from permanence.staff.model import User
from permanence.web.deps import CurrentRuntime, unit_of_work
from permanence.web.pages.render import Viewer, redirect, render, roles

router = APIRouter(include_in_schema=False)

Reader = Annotated[Viewer, roles(Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN)]
Evaluator = Annotated[Viewer, roles(Role.SUPERVISOR)]
EvaluatorForm = Annotated[Viewer, roles(Role.SUPERVISOR, form=True)]


@dataclass(frozen=True)
class AccountGrids:
    account_id: uuid.UUID
    account_name: str
    grids: list[Evaluation]
    to_evaluate: list[evaluations.ToEvaluate]


def _names(viewer: Viewer, rt: CurrentRuntime, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    with rt.db.session(viewer.context("page:evaluations"), readonly=True) as s:
        users = s.execute(select(User.id, User.display_name).where(User.id.in_(ids)))
        return {u[0]: u[1] for u in users}


@router.get("/evaluations", response_class=HTMLResponse)
def evaluations_page(request: Request, viewer: Reader, rt: CurrentRuntime) -> Response:
    """Grids account by account, newest first (row-level security: one account at a time)."""
    with rt.db.session(viewer.context("page:evaluations"), readonly=True) as s:
        accounts = [(a.id, a.name) for a in s.scalars(select(Account).order_by(Account.name))]
    sections = []
    for account_id, name in accounts:
        with unit_of_work(rt, viewer.principal, account_id, "page:evaluations", readonly=True) as s:
            grids = evaluations.visible(s)
            todo = evaluations.to_evaluate(s) if viewer.role in evaluations.EVALUATORS else []
        if grids or todo:
            sections.append(AccountGrids(account_id, name, grids, todo))
    people = {g.operator_id for a in sections for g in a.grids}
    people |= {g.evaluator_id for a in sections for g in a.grids}
    people |= {c.operator_id for a in sections for c in a.to_evaluate}
    response = render(
        request,
        "evaluations/list.html",
        viewer,
        sections=sections,
        evaluator=viewer.role in evaluations.EVALUATORS,
        names=_names(viewer, rt, people),
        criteria=evaluations.CRITERIA,
        done=request.query_params.get("fait") == "1",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _form(
    request: Request,
    viewer: Viewer,
    rt: CurrentRuntime,
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    *,
    problems: list[str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    with unit_of_work(rt, viewer.principal, account_id, f"call:{call_id}", readonly=True) as s:
        call, recording_id = evaluations.evaluable_call(s, call_id)
        account = s.get(Account, account_id)
        assert account is not None  # unit_of_work found it
        answered_at, operator_id, account_name = call.answered_at, call.operator_id, account.name
    assert operator_id is not None  # evaluable_call: answered by an operator
    response = render(
        request,
        "evaluations/form.html",
        viewer,
        status_code=status_code,
        account_id=account_id,
        account_name=account_name,
        call_id=call_id,
        answered_at=answered_at,
        operator=_names(viewer, rt, {operator_id}).get(operator_id, ""),
        audio=f"/api/v1/accounts/{account_id}/recordings/{recording_id}/audio",
        criteria=evaluations.CRITERIA,
        scores=evaluations.SCORES,
        problems=problems or [],
        values=values or {},
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/evaluations/{account_id}/{call_id}", response_class=HTMLResponse)
def evaluation_form(
    request: Request,
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    viewer: Evaluator,
    rt: CurrentRuntime,
) -> Response:
    """The grid of one answered, recorded call, with its recording to listen to."""
    return _form(request, viewer, rt, account_id, call_id)


@router.post("/evaluations/{account_id}/{call_id}", response_class=HTMLResponse)
def evaluation_record(
    request: Request,
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    viewer: EvaluatorForm,
    rt: CurrentRuntime,
    greeting: Annotated[str, Form(max_length=2)] = "",
    identification: Annotated[str, Form(max_length=2)] = "",
    accuracy: Annotated[str, Form(max_length=2)] = "",
    courtesy: Annotated[str, Form(max_length=2)] = "",
    instructions: Annotated[str, Form(max_length=2)] = "",
    commentaire: Annotated[str, Form(max_length=evaluations.COMMENT_MAX + 100)] = "",
) -> Response:
    """Record the grid; an incomplete one, or a comment quoting personal data, is shown again
    with what to fix (422) and nothing is saved."""
    scores = {
        "greeting": greeting,
        "identification": identification,
        "accuracy": accuracy,
        "courtesy": courtesy,
        "instructions": instructions,
    }
    try:
        with unit_of_work(rt, viewer.principal, account_id, f"call:{call_id}") as s:
            evaluations.record(s, call_id, scores, commentaire)
    except ValidationFailed as exc:
        values: dict[str, Any] = {**scores, "comment": commentaire}
        return _form(
            request,
            viewer,
            rt,
            account_id,
            call_id,
            problems=exc.problems,
            values=values,
            status_code=422,
        )
    return redirect("/evaluations?fait=1")
