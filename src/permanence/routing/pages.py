"""The queue in the pages: the operator's presence control and screen pop (a partial
included by the console, ``templates/routing/_presence.html``, and ``static/routing.js``),
and the administrators' page of operators' lines."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import select

from permanence.calls import presence
from permanence.context import Role
from permanence.db import utcnow
from permanence.errors import ValidationFailed
from permanence.routing import callbacks, devices, dispatch, transfers
from permanence.routing.model import OperatorLine, QueueEntry
from permanence.web.deps import CurrentRuntime, account_context
from permanence.web.pages.render import Viewer, fragment, redirect, render, roles

router = APIRouter(include_in_schema=False)  # pages stay out of the API schema

Operator = Annotated[Viewer, roles(Role.OPERATOR, Role.SUPERVISOR)]
OperatorForm = Annotated[Viewer, roles(Role.OPERATOR, Role.SUPERVISOR, form=True)]
Admin = Annotated[Viewer, roles(Role.ADMIN)]
AdminForm = Annotated[Viewer, roles(Role.ADMIN, form=True)]

# The operator's choices (the presence states they set themselves), in the console's words.
CHOICES = {"free": "available", "break": "pause", "offline": "offline"}


def my_state(rt: Any, viewer: Viewer) -> dict[str, Any]:
    """What the console shows: the state and for how long, whether the operator has a
    device, a call being offered, and the call to open (the screen pop) once answered."""
    with rt.db.session(viewer.context("console:presence")) as s:
        now = utcnow()
        dispatch.end_wrap_ups(s, rt.settings, now)
        row = presence.current(s)
        has_device = s.get(OperatorLine, viewer.user_id) is not None
        mine = s.scalars(
            select(QueueEntry).where(
                QueueEntry.operator_id == viewer.user_id,
                QueueEntry.state.in_(("offered", "connected")),
            )
        ).first()
        state = row.state if row is not None else "offline"
        since = round((now - row.since).total_seconds()) if row is not None else 0
        pop = None
        ringing = False
        if mine is None:  # a call-back the dispatcher offered (or the console placed)
            mine = s.scalars(
                select(QueueEntry).where(
                    QueueEntry.operator_id == viewer.user_id,
                    QueueEntry.result == callbacks.OFFERED,
                )
            ).first()
        if mine is not None and (mine.state == "connected" or mine.offer_status == callbacks.TAKEN):
            pop = f"/console/appels/{mine.account_id}/{mine.call_id}"
        elif mine is not None:
            ringing = True
    wrap = rt.settings.routing_wrap_up_seconds
    return {
        "state": state,
        "since_s": max(0, since),
        "wrap_up_left_s": max(0, wrap - since) if state == "wrap_up" else None,
        "device": has_device,
        "ringing": ringing,
        "pop": pop,
        "queue": rt.settings.routing_mode == "queue",
    }


@router.get("/console/routage/etat")
def state(viewer: Operator, rt: CurrentRuntime) -> JSONResponse:
    """Polled by routing.js every two seconds (no personal data: a state and a link)."""
    return JSONResponse(my_state(rt, viewer), headers={"Cache-Control": "no-store"})


@router.post("/console/routage/presence")
def set_presence(
    request: Request,
    viewer: OperatorForm,
    rt: CurrentRuntime,
    background: BackgroundTasks,
    etat: Annotated[str, Form(max_length=16)],
) -> Response:
    """Available, pause or offline (the console's control); a call waiting is offered to an
    operator who becomes available."""
    if etat not in CHOICES:
        raise ValidationFailed("etat must be one of: free, break, offline")
    with rt.db.session(viewer.context("console:presence")) as s:
        presence.set_state(s, etat)
    if etat == "free" and rt.settings.routing_mode == "queue":
        background.add_task(dispatch.dispatch, rt, dispatch.rest_api(rt))
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(my_state(rt, viewer))
    return redirect("/console")


# -- operators' lines (administrators) ---------------------------------------------------------


def _lines_page(
    request: Request,
    viewer: Viewer,
    rt: Any,
    *,
    status_code: int = 200,
    problem: tuple[str, str] | None = None,
    saved: bool = False,
) -> Response:
    with rt.db.session(viewer.context("admin:lines"), readonly=True) as s:
        rows = devices.lines(s)
    return render(
        request,
        "routing/lines.html",
        viewer,
        status_code=status_code,
        rows=rows,
        problem=problem,
        saved=saved,
    )


@router.get("/admin/lignes", response_class=HTMLResponse)
def lines(request: Request, viewer: Admin, rt: CurrentRuntime) -> Response:
    return _lines_page(request, viewer, rt, saved=request.query_params.get("enregistre") == "1")


@router.post("/admin/lignes/{user_id}", response_class=HTMLResponse)
def set_line(
    request: Request,
    user_id: uuid.UUID,
    viewer: AdminForm,
    rt: CurrentRuntime,
    appareil: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        with rt.db.session(viewer.context("admin:lines")) as s:
            devices.set_device(s, user_id, appareil)
    except ValidationFailed:
        return _lines_page(
            request, viewer, rt, status_code=422, problem=(str(user_id), devices.DEVICE_HELP)
        )
    return redirect("/admin/lignes?enregistre=1")


# -- cold transfer from the screen pop ---------------------------------------------------------


@router.get("/console/routage/transfert/{account_id}/{call_id}", response_class=HTMLResponse)
def transfer_form(
    request: Request,
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    viewer: Operator,
    rt: CurrentRuntime,
) -> Response:
    """The transfer control (loaded into the screen pop): the mandate's recipients only."""
    with rt.db.session(account_context(viewer.principal, account_id, "console:transfer")) as s:
        found = transfers.transferable(s, call_id)
        entry = s.get(QueueEntry, call_id) if found else None
        consulting = entry is not None and entry.consult_target is not None
    html = fragment(
        request,
        "routing/_transfer_form.html",
        targets=found,
        consulting=consulting,
        csrf=viewer.csrf_token,
        action=f"/console/routage/transfert/{account_id}/{call_id}",
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.post("/console/routage/transfert/{account_id}/{call_id}")
def transfer(
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    viewer: OperatorForm,
    rt: CurrentRuntime,
    destinataire: Annotated[int, Form(ge=0, le=99)],
) -> Response:
    """Cold transfer to the mandate's recipient number ``destinataire``: the caller is passed
    on, the operator's call ends (wrap-up)."""
    ctx = account_context(viewer.principal, account_id, "console:transfer")
    transfers.cold_transfer(rt, ctx, call_id, destinataire, dispatch.rest_api(rt))
    return redirect("/console?transfert=1")


@router.post("/console/routage/transfert-accompagne/{account_id}/{call_id}")
def warm_transfer(
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    viewer: OperatorForm,
    rt: CurrentRuntime,
    destinataire: Annotated[int, Form(ge=0, le=99)],
) -> Response:
    """Warm transfer: the operator speaks to the mandate's recipient ``destinataire`` first
    while the caller holds; then « Relier » or « Reprendre »."""
    ctx = account_context(viewer.principal, account_id, "console:transfer")
    transfers.warm_transfer(rt, ctx, call_id, destinataire, dispatch.rest_api(rt))
    return redirect(f"/console/appels/{account_id}/{call_id}")


@router.post("/console/routage/transfert-accompagne/{account_id}/{call_id}/relier")
def warm_bridge(
    account_id: uuid.UUID, call_id: uuid.UUID, viewer: OperatorForm, rt: CurrentRuntime
) -> Response:
    """The recipient agreed: the caller is put through, the operator's call ends."""
    ctx = account_context(viewer.principal, account_id, "console:transfer")
    transfers.warm_bridge(rt, ctx, call_id, dispatch.rest_api(rt))
    return redirect("/console?transfert=1")


@router.post("/console/routage/transfert-accompagne/{account_id}/{call_id}/reprendre")
def warm_back(
    account_id: uuid.UUID, call_id: uuid.UUID, viewer: OperatorForm, rt: CurrentRuntime
) -> Response:
    """The recipient declined or did not answer: back to the caller."""
    ctx = account_context(viewer.principal, account_id, "console:transfer")
    transfers.warm_back(rt, ctx, call_id, dispatch.rest_api(rt))
    return redirect(f"/console/appels/{account_id}/{call_id}")


# -- call-backs ---------------------------------------------------------------------------------


@router.post("/console/rappels/{account_id}/{call_id}")
def call_back(
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    viewer: OperatorForm,
    rt: CurrentRuntime,
) -> Response:
    """Call back the caller of ``call_id`` (a voicemail's call, or a call-back asked for in
    the queue): the operator's own line rings first, then the person (routing.callbacks)."""
    ctx = account_context(viewer.principal, account_id, "console:callback")
    callbacks.place(rt, ctx, call_id, dispatch.rest_api(rt))
    return redirect("/console?rappel=1")
