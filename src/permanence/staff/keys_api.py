"""The account's API keys: created (the secret shown once), listed, revoked."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from permanence.context import Role
from permanence.staff import auth
from permanence.staff.model import ApiKey
from permanence.web import schemas as S
from permanence.web.deps import CurrentRuntime, Principal, require, session_of, unit_of_work
from permanence.web.routes import ApiRoute
from permanence.web.schemas import ERRORS

router = APIRouter(prefix="/api/v1", route_class=ApiRoute)
KeyManager = Annotated[Principal, Depends(require(Role.CLIENT, Role.ADMIN))]


def _key_out(k: ApiKey, secret: str | None = None) -> S.ApiKeyOut:
    return S.ApiKeyOut(
        id=k.id,
        name=k.name,
        scopes=k.scopes.split(),
        created_at=k.created_at,
        revoked_at=k.revoked_at,
        secret=secret,
    )


@router.post(
    "/accounts/{account_id}/api-keys",
    response_model=S.ApiKeyOut,
    status_code=201,
    responses=ERRORS,
    tags=["api keys"],
)
def create_key(
    account_id: uuid.UUID, body: S.ApiKeyIn, p: KeyManager, rt: CurrentRuntime
) -> S.ApiKeyOut:
    """A scoped key for the account's integrations; the secret is shown only now."""
    auth.require_recent_auth(session_of(rt, p))
    with unit_of_work(rt, p, account_id, "api:api_keys") as s:
        new = auth.create_api_key(s, account_id, name=body.name, scopes=body.scopes)
        return _key_out(new.key, new.secret)


@router.get(
    "/accounts/{account_id}/api-keys",
    response_model=list[S.ApiKeyOut],
    responses=ERRORS,
    tags=["api keys"],
)
def list_keys(account_id: uuid.UUID, p: KeyManager, rt: CurrentRuntime) -> list[S.ApiKeyOut]:
    with unit_of_work(rt, p, account_id, "api:api_keys", readonly=True) as s:
        return [_key_out(k) for k in auth.list_api_keys(s, account_id)]


@router.delete(
    "/accounts/{account_id}/api-keys/{key_id}",
    status_code=204,
    responses=ERRORS,
    tags=["api keys"],
)
def revoke_key(account_id: uuid.UUID, key_id: uuid.UUID, p: KeyManager, rt: CurrentRuntime) -> None:
    with unit_of_work(rt, p, account_id, "api:api_keys") as s:
        auth.revoke_api_key(s, account_id, key_id)
