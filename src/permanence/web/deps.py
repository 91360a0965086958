"""Who is calling, and the access context a route acts under.

A request is authenticated by the session cookie (browsers; state-changing requests also need
the CSRF token header) or by ``Authorization: Bearer <API key>`` (integrations). Every
account-scoped route takes the account from its path: a client user or an API key may only
name its own account (anything else is a 404, as if it did not exist); staff may name any
existing account.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from permanence.accounts.model import Account
from permanence.context import STAFF_ROLES, AccessContext, Role
from permanence.errors import NotAuthenticated, NotFound, PermissionDenied
from permanence.runtime import Runtime
from permanence.staff import auth
from permanence.staff.model import WebSession

SESSION_COOKIE = "permanence_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.rt
    return rt


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID | None
    role: Role
    account_id: uuid.UUID | None  # a client user's or API key's own account
    scopes: frozenset[str] | None  # None: a person (role decides); set: an API key
    session_token: str | None = None
    csrf_token: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    def context(self, reason: str, account_id: uuid.UUID | None = None) -> AccessContext:
        return AccessContext(
            role=self.role, reason=reason, actor_id=self.user_id, account_id=account_id
        )


def principal(request: Request, rt: Annotated[Runtime, Depends(runtime)]) -> Principal:
    """The authenticated caller of this request, or 401."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        with rt.db.session(AccessContext.system("auth:api_key"), readonly=True) as s:
            key = auth.resolve_api_key(s, header[7:].strip())
            return Principal(
                user_id=None,
                role=Role.CLIENT,
                account_id=key.account_id,
                scopes=frozenset(key.scopes.split()),
            )
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise NotAuthenticated("sign in first")
    ctx = AccessContext.system("auth:session")
    with rt.db.session(ctx, readonly=True) as s:
        user, ws = auth.resolve_session(s, token)
        p = Principal(
            user_id=user.id,
            role=user.role,
            account_id=user.account_id,
            scopes=None,
            session_token=token,
            csrf_token=ws.csrf_token,
        )
        touch = auth.needs_touch(ws)
    if touch:
        with rt.db.session(ctx) as s:
            auth.touch(s, token)
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not (p.csrf_token and hmac.compare_digest(sent, p.csrf_token)):
            raise PermissionDenied("missing or wrong CSRF token (header X-CSRF-Token)")
    return p


CurrentPrincipal = Annotated[Principal, Depends(principal)]
CurrentRuntime = Annotated[Runtime, Depends(runtime)]


def require(*roles: Role, scope: str | None = None) -> Callable[[Request, Principal], Principal]:
    """A dependency: the principal must have one of ``roles`` (API keys: the scope)."""

    def check(request: Request, p: CurrentPrincipal) -> Principal:
        # Another account's resources do not exist for a client user or key: 404 before 403.
        path_account = request.path_params.get("account_id")
        if path_account is not None and not p.is_staff and str(p.account_id) != str(path_account):
            raise NotFound("no such account")
        if p.scopes is not None:
            if scope is None or scope not in p.scopes:
                raise PermissionDenied("this API key does not have the scope for this action")
            return p
        if p.role not in roles:
            raise PermissionDenied("your role does not allow this action")
        return p

    return check


def account_context(p: Principal, account_id: uuid.UUID, reason: str) -> AccessContext:
    """The context for acting on ``account_id``: 404 unless the principal may see it (staff
    may act on any existing account: checked in the unit of work)."""
    if not p.is_staff and p.account_id != account_id:
        raise NotFound("no such account")
    return p.context(reason, account_id)


@contextmanager
def unit_of_work(
    rt: Runtime, p: Principal, account_id: uuid.UUID, reason: str, *, readonly: bool = False
) -> Iterator[Session]:
    """One transaction acting for ``account_id`` with the principal's context."""
    ctx = account_context(p, account_id, reason)
    with rt.db.session(ctx, readonly=readonly) as s:
        if p.is_staff and s.get(Account, account_id) is None:
            raise NotFound("no such account")
        yield s


def session_of(rt: Runtime, p: Principal) -> WebSession | None:
    if p.session_token is None:
        return None
    with rt.db.session(AccessContext.system("auth:session"), readonly=True) as s:
        return auth.resolve_session(s, p.session_token)[1]
