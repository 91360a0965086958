"""The accounts a principal serves, their mandates' purposes with the forms derived from
them, and the mandate itself."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from permanence.accounts import service as accounts
from permanence.accounts.model import Account
from permanence.mandates.forms import form_for
from permanence.web import schemas as S
from permanence.web.deps import AnyOne, CurrentRuntime, unit_of_work
from permanence.web.routes import ApiRoute
from permanence.web.schemas import ERRORS

router = APIRouter(prefix="/api/v1", route_class=ApiRoute)


def _account_out(a: Account) -> S.AccountOut:
    return S.AccountOut(id=a.id, slug=a.slug, name=a.name, kind=a.kind.value, status=a.status.value)


@router.get("/accounts", response_model=list[S.AccountOut], responses=ERRORS, tags=["accounts"])
def list_accounts(p: AnyOne, rt: CurrentRuntime) -> list[S.AccountOut]:
    with rt.db.session(p.context("api:accounts"), readonly=True) as s:
        if p.is_staff:
            return [_account_out(a) for a in accounts.list_accounts(s)]
        assert p.account_id is not None
        return [_account_out(accounts.get_account(s, p.account_id))]


@router.get(
    "/accounts/{account_id}/purposes",
    response_model=list[S.PurposeOut],
    responses=ERRORS,
    tags=["accounts"],
)
def purposes(account_id: uuid.UUID, p: AnyOne, rt: CurrentRuntime) -> list[S.PurposeOut]:
    """The current mandate's purposes, each with the form derived from it."""
    with unit_of_work(rt, p, account_id, "api:purposes", readonly=True) as s:
        _row, mandate = accounts.mandate_version(s, account_id)
    out = []
    for purpose in mandate.purposes:
        wording = purpose.consent_wording
        out.append(
            S.PurposeOut(
                code=purpose.code,
                label_fr=purpose.label_fr,
                label_en=purpose.label_en,
                legal_basis=purpose.legal_basis.value,
                needs_consent=purpose.needs_consent,
                consent_wording_version=wording.version if wording else None,
                consent_wording_fr=wording.text_fr if wording else None,
                fields=[
                    S.FormFieldOut(
                        name=f.name,
                        label_fr=f.label_fr,
                        label_en=f.label_en,
                        input_type=f.input_type,
                        required=f.required,
                        max_length=f.max_length,
                        choices=list(f.choices) if f.choices else None,
                        special_category=f.special_category,
                    )
                    for f in form_for(mandate, purpose.code)
                ],
            )
        )
    return out


@router.get("/accounts/{account_id}/mandate", responses=ERRORS, tags=["accounts"])
def mandate(
    account_id: uuid.UUID,
    p: AnyOne,
    rt: CurrentRuntime,
    version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> Response:
    """The mandate (current version, or the one asked for), as JSON."""
    with unit_of_work(rt, p, account_id, "api:mandate", readonly=True) as s:
        text = accounts.export_mandate(s, account_id, version, "json")
    return Response(text, media_type="application/json")
