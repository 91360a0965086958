"""The DPO's page of audits: of the service itself and of each sub-processor, with findings,
follow-up actions (owner, due date) and the next audit's due date (audits/service.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from permanence.audits import service as audits
from permanence.context import STAFF_ROLES, Role
from permanence.contracts.model import SubProcessor
from permanence.db import utcnow
from permanence.errors import ValidationFailed
from permanence.render import paris_date
from permanence.staff.model import User
from permanence.web.deps import CurrentRuntime
from permanence.web.pages.render import Viewer, redirect, render, roles

router = APIRouter(prefix="/dpo/audits")
Desk = Annotated[Viewer, roles(Role.DPO, Role.ADMIN)]
DeskForm = Annotated[Viewer, roles(Role.DPO, Role.ADMIN, form=True)]
SHORT, TEXT = 200, 4000


def _page(
    request: Request,
    viewer: Viewer,
    rt: CurrentRuntime,
    *,
    problems: list[str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    with rt.db.session(viewer.context("dpo:audits"), readonly=True) as s:
        views = audits.history(s)
        targets = [
            (sp.code, sp.name)
            for sp in s.scalars(
                select(SubProcessor)
                .where(SubProcessor.status == "active")
                .order_by(SubProcessor.code)
            )
        ]
        staff = [
            (u.email, u.display_name)
            for u in s.scalars(
                select(User)
                .where(User.role.in_(list(STAFF_ROLES)), User.active.is_(True))
                .order_by(User.display_name)
            )
        ]
    return render(
        request,
        "dpo/audits.html",
        viewer,
        status_code=status_code,
        views=views,
        today=paris_date(utcnow()),
        targets=targets,
        staff=staff,
        problems=problems or [],
        values=values or {},
        done=request.query_params.get("fait"),
    )


@router.get("", response_class=HTMLResponse)
def audits_page(request: Request, viewer: Desk, rt: CurrentRuntime) -> Response:
    """Audits, newest first; what is overdue is marked; the form records a new one."""
    return _page(request, viewer, rt)


def _date(value: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ValidationFailed(f"{field}: expected a date", problems=[f"{field}:date"]) from None


@router.post("", response_class=HTMLResponse)
def record(
    request: Request,
    viewer: DeskForm,
    rt: CurrentRuntime,
    cible: Annotated[str, Form(max_length=64)] = "",
    date: Annotated[str, Form(max_length=SHORT)] = "",
    perimetre: Annotated[str, Form(max_length=TEXT)] = "",
    constats: Annotated[str, Form(max_length=TEXT)] = "",
    prochain: Annotated[str, Form(max_length=SHORT)] = "",
    action: Annotated[str, Form(max_length=500)] = "",
    responsable: Annotated[str, Form(max_length=254)] = "",
    echeance: Annotated[str, Form(max_length=SHORT)] = "",
) -> Response:
    """Record an audit (and, optionally, its first follow-up action)."""
    values = {
        "target": cible,
        "performed_on": date,
        "scope": perimetre,
        "findings": constats,
        "next_due_on": prochain,
        "action": action,
        "owner": responsable,
        "due_on": echeance,
    }
    try:
        actions = []
        if action.strip() or responsable.strip() or echeance.strip():
            actions.append(audits.NewAction(action, responsable, _date(echeance, "due_on")))
        with rt.db.session(viewer.context("dpo:audit_record")) as s:
            audits.record_audit(
                s,
                target=cible,
                performed_on=_date(date, "performed_on"),
                scope=perimetre,
                findings=constats,
                next_due_on=_date(prochain, "next_due_on"),
                actions=actions,
            )
    except ValidationFailed as exc:
        return _page(
            request, viewer, rt, problems=exc.problems or ["form"], values=values, status_code=422
        )
    return redirect("/dpo/audits?fait=audit")


@router.post("/actions/{action_id}/fait", response_class=HTMLResponse)
def action_done(action_id: uuid.UUID, viewer: DeskForm, rt: CurrentRuntime) -> Response:
    with rt.db.session(viewer.context("dpo:audit_action")) as s:
        audits.complete_action(s, action_id)
    return redirect("/dpo/audits?fait=action")
