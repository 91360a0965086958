"""The client's copy of its Art. 28 contract: the PDF of a signed version, as stored (the
bytes whose SHA-256 the portal shows). The account comes from the session, never the URL."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response
from sqlalchemy import select

from permanence.context import Role
from permanence.contracts import scc
from permanence.contracts.model import Contract
from permanence.errors import NotFound
from permanence.web.deps import CurrentRuntime, unit_of_work
from permanence.web.pages.render import Viewer, roles

router = APIRouter(prefix="/portail/contrat", include_in_schema=False)  # a page, not the API
Client = Annotated[Viewer, roles(Role.CLIENT)]


@router.get("/v{version}.pdf")
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
