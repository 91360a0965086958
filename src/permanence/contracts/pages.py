"""Contract pages: the client's copy of its Art. 28 contract (the PDF of a signed version, as
stored: the bytes whose SHA-256 the portal shows; the account comes from the session, never
the URL), and the DPO's contracts desk (``/dpo/contrats``: every client's contract, its
state, what is missing, the sub-processor register with each flow-down agreement, the
off-boarding confirmations)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from permanence.context import Role
from permanence.contracts import desk, scc
from permanence.contracts.model import Contract
from permanence.contracts.service import CLAUSES
from permanence.errors import NotFound
from permanence.web.deps import CurrentRuntime, unit_of_work
from permanence.web.pages.render import Viewer, render, roles

router = APIRouter(include_in_schema=False)  # pages, not the API
Client = Annotated[Viewer, roles(Role.CLIENT)]
Dpo = Annotated[Viewer, roles(Role.DPO, Role.ADMIN)]
SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"


@router.get("/portail/contrat/v{version}.pdf")
def contract_pdf(
    viewer: Client, rt: CurrentRuntime, version: Annotated[int, Path(ge=1, le=10_000)]
) -> Response:
    account_id = viewer.principal.account_id
    assert account_id is not None
    with unit_of_work(rt, viewer.principal, account_id, "portal:contract", readonly=True) as s:
        contract = s.scalars(
            select(Contract).where(Contract.account_id == account_id, Contract.version == version)
        ).first()
        if contract is None:
            raise NotFound("no such contract version")
        stored = scc.document_of(s, contract.id)
        if stored is None:
            raise NotFound("this contract version is not signed yet")
        data = stored.pdf
        name = f"{contract.reference}-v{contract.version}.pdf"
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _accounts(rt: CurrentRuntime, viewer: Viewer) -> list[desk.AccountContracts]:
    with rt.db.session(viewer.principal.context("dpo:contracts"), readonly=True) as s:
        accounts = desk.accounts(s)
    out = []
    for a in accounts:
        with unit_of_work(rt, viewer.principal, a.id, "dpo:contracts", readonly=True) as s:
            out.append(desk.account_contracts(s, a))
    return out


@router.get("/dpo/contrats", response_class=HTMLResponse)
def contracts_page(request: Request, viewer: Dpo, rt: CurrentRuntime) -> Response:
    """Every client's contract and what it lacks; the register and its flow-down state."""
    rows = _accounts(rt, viewer)
    with rt.db.session(viewer.principal.context("dpo:contracts"), readonly=True) as s:
        subs = desk.subprocessors(s)
    return render(request, "dpo/contracts.html", viewer, rows=rows, subs=subs)


@router.get("/dpo/contrats/{slug}", response_class=HTMLResponse)
def contract_page(
    request: Request,
    viewer: Dpo,
    rt: CurrentRuntime,
    slug: Annotated[str, Path(pattern=SLUG)],
) -> Response:
    """One client: each version with its state, signatories and hash; the clauses; what is
    missing; changes held by its objection; its off-boarding confirmations."""
    with rt.db.session(viewer.principal.context("dpo:contracts"), readonly=True) as s:
        account = next((a for a in desk.accounts(s) if a.slug == slug), None)
    if account is None:
        raise NotFound("no such account")
    with unit_of_work(rt, viewer.principal, account.id, "dpo:contracts", readonly=True) as s:
        view = desk.account_contracts(s, account)
    clauses = desk.clauses_of(view.in_force) if view.in_force is not None else {}
    return render(request, "dpo/contract.html", viewer, v=view, clauses=clauses, letters=CLAUSES)
