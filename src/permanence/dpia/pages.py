"""DPIA pages: the DPO writes each version and validates it (``/dpo/aipd``); the client reads
the validated DPIA of its account and gives its opinion (``/portail/aipd``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.datastructures import FormData

from permanence.accounts.model import Account, AccountStatus
from permanence.accounts.service import mandate_version
from permanence.context import Role
from permanence.db import utcnow
from permanence.dpia import service as dpias
from permanence.errors import NotFound
from permanence.web.deps import CurrentRuntime, unit_of_work
from permanence.web.pages.render import Viewer, redirect, render, roles

router = APIRouter(include_in_schema=False)  # pages, not the API
Dpo = Annotated[Viewer, roles(Role.DPO, Role.ADMIN)]
DpoForm = Annotated[Viewer, roles(Role.DPO, Role.ADMIN, form=True)]
Client = Annotated[Viewer, roles(Role.CLIENT)]
ClientForm = Annotated[Viewer, roles(Role.CLIENT, form=True)]
SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"
PROCESSING = "^(health|recording)$"


def _accounts(rt: Any, viewer: Viewer) -> list[Account]:
    with rt.db.session(viewer.principal.context("dpo:dpia"), readonly=True) as s:
        return list(
            s.scalars(
                select(Account).where(Account.status == AccountStatus.ACTIVE).order_by(Account.slug)
            )
        )


def _account(rt: Any, viewer: Viewer, slug: str) -> Account:
    for a in _accounts(rt, viewer):
        if a.slug == slug:
            return a
    raise NotFound("no such account")


@router.get("/dpo/aipd", response_class=HTMLResponse)
def dpia_list(request: Request, viewer: Dpo, rt: CurrentRuntime) -> Response:
    """Each client processing that needs a DPIA, and whether its DPIA is current."""
    rows = []
    for a in _accounts(rt, viewer):
        with unit_of_work(rt, viewer.principal, a.id, "dpo:dpia", readonly=True) as s:
            rows += [(a, st) for st in dpias.account_status(s)]
    return render(request, "dpo/dpia_list.html", viewer, rows=rows)


@router.get("/dpo/aipd/{slug}/{processing}", response_class=HTMLResponse)
def dpia_page(
    request: Request,
    viewer: Dpo,
    rt: CurrentRuntime,
    slug: Annotated[str, Path(pattern=SLUG)],
    processing: Annotated[str, Path(pattern=PROCESSING)],
) -> Response:
    account = _account(rt, viewer, slug)
    with unit_of_work(rt, viewer.principal, account.id, "dpo:dpia", readonly=True) as s:
        history = dpias.versions(s, processing)
        if history:
            content = dpias.content_of(history[0])
        else:
            _row, mandate = mandate_version(s, account.id)
            content = dpias.draft_content(rt.settings, mandate, processing)
        st = next((x for x in dpias.account_status(s) if x.processing == processing), None)
    return render(
        request,
        "dpo/dpia.html",
        viewer,
        account=account,
        processing=processing,
        title=dpias.PROCESSINGS[processing][0],
        why=dpias.PROCESSINGS[processing][1],
        history=history,
        content=content,
        status=st,
        risks=dpias.RISKS,
        levels=dpias.LEVELS,
        saved=request.query_params.get("ok"),
    )


def _content_from(form: FormData) -> dict[str, Any]:
    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    def level(name: str) -> int:
        try:
            return int(text(name))
        except ValueError:
            return 0

    return {
        "context": text("context"),
        "necessity": text("necessity"),
        "rights": text("rights"),
        "action_plan": text("action_plan"),
        "risks": [
            {
                "code": code,
                "impacts": text(f"{code}-impacts"),
                "threats": text(f"{code}-threats"),
                "sources": text(f"{code}-sources"),
                "measures": text(f"{code}-measures"),
                "severity": level(f"{code}-severity"),
                "likelihood": level(f"{code}-likelihood"),
            }
            for code in dpias.RISKS
        ],
    }


@router.post("/dpo/aipd/{slug}/{processing}")
async def dpia_save(
    request: Request,
    viewer: DpoForm,
    rt: CurrentRuntime,
    slug: Annotated[str, Path(pattern=SLUG)],
    processing: Annotated[str, Path(pattern=PROCESSING)],
) -> Response:
    """A new version of the DPIA, from the form (a draft until the DPO validates it)."""
    account = _account(rt, viewer, slug)
    content = _content_from(await request.form())
    with unit_of_work(rt, viewer.principal, account.id, f"dpia:{processing}") as s:
        dpias.save_version(s, processing, content)
    return redirect(f"/dpo/aipd/{slug}/{processing}?ok=saved")


@router.post("/dpo/aipd/{slug}/{processing}/validation")
def dpia_validate(
    viewer: DpoForm,
    rt: CurrentRuntime,
    slug: Annotated[str, Path(pattern=SLUG)],
    processing: Annotated[str, Path(pattern=PROCESSING)],
    dpia_id: Annotated[uuid.UUID, Form()],
    opinion: Annotated[str, Form(max_length=4000)],
) -> Response:
    account = _account(rt, viewer, slug)
    with unit_of_work(rt, viewer.principal, account.id, f"dpia:{processing}") as s:
        dpias.validate(s, dpia_id, opinion)
    return redirect(f"/dpo/aipd/{slug}/{processing}?ok=validated")


@router.get("/portail/aipd", response_class=HTMLResponse)
def portal_dpias(request: Request, viewer: Client, rt: CurrentRuntime) -> Response:
    """The client's DPIAs: each validated version, its risks, the DPO's opinion, its own."""
    account_id = viewer.principal.account_id
    assert account_id is not None
    with unit_of_work(rt, viewer.principal, account_id, "portal:dpia", readonly=True) as s:
        validated = [
            (d, dpias.content_of(d)) for d in dpias.versions(s) if d.validated_at is not None
        ]
    return render(
        request,
        "portal/dpia.html",
        viewer,
        validated=validated,
        processings=dpias.PROCESSINGS,
        risks=dpias.RISKS,
        levels=dpias.LEVELS,
        saved=request.query_params.get("ok"),
        now=utcnow(),
    )


@router.post("/portail/aipd/{dpia_id}/avis")
def portal_dpia_opinion(
    dpia_id: uuid.UUID,
    viewer: ClientForm,
    rt: CurrentRuntime,
    opinion: Annotated[str, Form(max_length=4000)],
) -> Response:
    account_id = viewer.principal.account_id
    assert account_id is not None
    with unit_of_work(rt, viewer.principal, account_id, f"dpia:{dpia_id}") as s:
        dpias.record_client_opinion(s, dpia_id, opinion)
    return redirect("/portail/aipd?ok=1")
