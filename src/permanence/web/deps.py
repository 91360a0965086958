"""Who is calling, and the access context a route acts under.

A request is authenticated by the session cookie (browsers; state-changing requests also need
the CSRF token header) or by ``Authorization: Bearer <API key>`` (integrations). Every
account-scoped route takes the account from its path: a client user or an API key may only
name its own account (anything else is a 404, as if it did not exist); staff may name any
existing account.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
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


async def runtime(request: Request) -> Runtime:
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
    key_id: uuid.UUID | None = None  # an API key: its id and name, for the audit log
    key_name: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    def context(self, reason: str, account_id: uuid.UUID | None = None) -> AccessContext:
        return AccessContext(
            role=self.role,
            reason=reason,
            actor_id=self.user_id,
            account_id=account_id,
            api_key_id=self.key_id,
            api_key_name=self.key_name,
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
                key_id=key.id,
                key_name=key.name,
            )
    token, remembered, p = _cookie_session(request)
    if p is None:
        p = _check_session(rt, token, remembered)
    return _csrf_checked(request, p)


def _cookie_session(request: Request) -> tuple[str, str, Principal | None]:
    """The session cookie's token, its key in the memory, and the principal remembered for it
    if it was checked in the last few seconds (None: the database must be asked)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise NotAuthenticated("sign in first")
    remembered = _key(token)
    return token, remembered, _recently_checked(remembered)


def _csrf_checked(request: Request, p: Principal) -> Principal:
    """``p``, if the request is safe or carries the session's CSRF token; else 403."""
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not (p.csrf_token and hmac.compare_digest(sent, p.csrf_token)):
            raise PermissionDenied("missing or wrong CSRF token (header X-CSRF-Token)")
    return p


async def current_principal(
    request: Request, rt: Annotated[Runtime, Depends(runtime)]
) -> Principal:
    """``principal`` as the routes' dependency. A session checked in the last few seconds is
    answered here, on the event loop (a dictionary look-up and the CSRF comparison: the same
    checks, no database); anything that reads the database — an API key, a session not
    remembered — goes to a worker thread as before. A sync dependency would cost every
    request a hand-off to a worker thread and back (issue 24). A session not remembered is
    looked up in the memory once, here: the thread only reads the database (then remembers
    it), and the CSRF check is the same one, here, after it."""
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return await run_in_threadpool(principal, request, rt)
    token, remembered, p = _cookie_session(request)
    if p is None:
        p = await run_in_threadpool(_check_session, rt, token, remembered)
    return _csrf_checked(request, p)


# Sessions checked against the database in the last few seconds: a burst of requests from one
# browser costs one lookup. Signing out or changing a password here forgets them at once;
# another process sees a revocation within RECHECK_SECONDS (see docs/adr/0006).
RECHECK_SECONDS = 5.0
_MAX_REMEMBERED = 10_000
_recent: dict[str, tuple[float, Principal]] = {}
_recent_lock = threading.Lock()


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _recently_checked(key: str) -> Principal | None:
    """The session whose token hashes to ``key`` (``_key``), if checked in the last seconds."""
    hit = _recent.get(key)
    if hit is None or time.monotonic() - hit[0] > RECHECK_SECONDS:
        return None
    return hit[1]


def _check_session(rt: Runtime, token: str, key: str) -> Principal:
    """The session looked up in the database (401 if expired, revoked or unknown), touched
    if stale, then remembered under ``key`` (``_key(token)``)."""
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
    now = time.monotonic()
    with _recent_lock:
        if len(_recent) >= _MAX_REMEMBERED:
            for k in [k for k, (at, _) in _recent.items() if now - at > RECHECK_SECONDS]:
                del _recent[k]
            if len(_recent) >= _MAX_REMEMBERED:
                _recent.clear()
        _recent[key] = (now, p)
    return p


def forget_session(token: str) -> None:
    """After signing out: this process stops honouring the session at once."""
    with _recent_lock:
        _recent.pop(_key(token), None)


def forget_user(user_id: uuid.UUID) -> None:
    """After a password or MFA change: every remembered session of the user."""
    with _recent_lock:
        for k in [k for k, (_, p) in _recent.items() if p.user_id == user_id]:
            del _recent[k]


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
CurrentRuntime = Annotated[Runtime, Depends(runtime)]


def require(
    *roles: Role, scope: str | None = None
) -> Callable[[Request, Principal], Awaitable[Principal]]:
    """A dependency: the principal must have one of ``roles`` (API keys: the scope)."""

    async def check(request: Request, p: CurrentPrincipal) -> Principal:
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


# Who may call, shared by the features' routes.
OPERATING = (Role.OPERATOR, Role.SUPERVISOR)
READING = (Role.CLIENT, Role.OPERATOR, Role.SUPERVISOR, Role.DPO)
EVERYONE = (Role.CLIENT, Role.OPERATOR, Role.SUPERVISOR, Role.DPO, Role.ADMIN)
Operator = Annotated[Principal, Depends(require(*OPERATING))]
AnyOne = Annotated[Principal, Depends(require(*EVERYONE))]


def account_context(p: Principal, account_id: uuid.UUID, reason: str) -> AccessContext:
    """The context for acting on ``account_id``: 404 unless the principal may see it (staff
    may act on any existing account: checked in the unit of work)."""
    if not p.is_staff and p.account_id != account_id:
        raise NotFound("no such account")
    return p.context(reason, account_id)


_known_accounts: set[uuid.UUID] = set()


@contextmanager
def unit_of_work(
    rt: Runtime, p: Principal, account_id: uuid.UUID, reason: str, *, readonly: bool = False
) -> Iterator[Session]:
    """One transaction acting for ``account_id`` with the principal's context."""
    ctx = account_context(p, account_id, reason)
    with rt.db.session(ctx, readonly=readonly) as s:
        if p.is_staff and account_id not in _known_accounts:
            if s.get(Account, account_id) is None:
                raise NotFound("no such account")
            _known_accounts.add(
                account_id
            )  # account rows are never deleted (off-boarding keeps them)
        yield s


def session_of(rt: Runtime, p: Principal) -> WebSession | None:
    if p.session_token is None:
        return None
    with rt.db.session(AccessContext.system("auth:session"), readonly=True) as s:
        return auth.resolve_session(s, p.session_token)[1]


def secure_cookies(request: Request) -> bool:
    """Cookies get the Secure flag when the request came over HTTPS: directly, or through a
    reverse proxy that uvicorn trusts (PERMANENCE_FORWARDED_ALLOW_IPS), which sets the scheme.
    A forwarded header from an untrusted peer is not looked at."""
    return request.url.scheme == "https"
