"""Signing in over the API: log in (password and TOTP, or a recovery code), log out, confirm
the password again, who am I."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.responses import JSONResponse

from permanence.context import AccessContext
from permanence.errors import NotAuthenticated, NotFound, ValidationFailed
from permanence.staff import auth
from permanence.staff.model import User
from permanence.web import schemas as S
from permanence.web.deps import (
    SESSION_COOKIE,
    CurrentPrincipal,
    CurrentRuntime,
    forget_session,
    secure_cookies,
)
from permanence.web.routes import ApiRoute
from permanence.web.schemas import ERRORS

router = APIRouter(prefix="/api/v1", route_class=ApiRoute)


@router.post(
    "/auth/login",
    response_model=S.Me,
    responses={**ERRORS, 423: {"model": S.Problem}},
    tags=["auth"],
)
def login(
    body: S.LoginIn,
    request: Request,
    response: Response,
    rt: CurrentRuntime,
    background: BackgroundTasks,
) -> S.Me | Response:
    """Sign in (staff give their TOTP code too); sets the session cookie, returns the CSRF
    token to send back in X-CSRF-Token on every state-changing request."""
    client = request.client.host if request.client else None
    with rt.db.session(AccessContext.system("auth:login")) as s:
        signed = auth.sign_in(
            s,
            rt.keyring,
            email=body.email,
            password=body.password,
            totp_code=body.totp,
            client=client,
        )
        me = _me(signed.user, signed.csrf_token) if signed else None
    if signed is None or me is None:
        from permanence.staff.credentials_api import lock_after_refusal

        lock_after_refusal(rt, body.email, background)
        # Answered, not raised: the unlock e-mail (if any) leaves after this answer.
        refused = NotAuthenticated(auth.REFUSED)
        return JSONResponse(
            {"error": refused.code, "message": refused.message}, status_code=refused.status_code
        )
    response.set_cookie(
        SESSION_COOKIE,
        signed.token,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        max_age=int(auth.ABSOLUTE_TIMEOUT.total_seconds()),
        path="/",
    )
    return me


@router.post("/auth/logout", status_code=204, responses=ERRORS, tags=["auth"])
def logout(p: CurrentPrincipal, rt: CurrentRuntime, response: Response) -> None:
    if p.session_token:
        with rt.db.session(p.context("auth:logout")) as s:
            auth.sign_out(s, p.session_token)
        forget_session(p.session_token)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.post("/auth/reauth", status_code=204, responses=ERRORS, tags=["auth"])
def reauth(body: S.ReauthIn, p: CurrentPrincipal, rt: CurrentRuntime) -> None:
    """Confirm identity before a sensitive action (valid five minutes)."""
    if p.session_token is None or p.user_id is None:
        raise ValidationFailed("re-authentication is for signed-in users")
    with rt.db.session(p.context("auth:reauth")) as s:
        user, ws = auth.resolve_session(s, p.session_token)
        ok = auth.reauthenticate(
            s, rt.keyring, user, ws, password=body.password, totp_code=body.totp
        )
    if not ok:
        raise NotAuthenticated("password or code not recognised")


@router.get("/me", response_model=S.Me, responses=ERRORS, tags=["auth"])
def me(p: CurrentPrincipal, rt: CurrentRuntime) -> S.Me:
    if p.user_id is None:
        raise NotFound("an API key is not a user")
    with rt.db.session(p.context("auth:me"), readonly=True) as s:
        user = s.get(User, p.user_id)
        assert user is not None
        return _me(user, p.csrf_token)


def _me(user: User, csrf: str | None) -> S.Me:
    return S.Me(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role.value,
        account_id=user.account_id,
        csrf_token=csrf,
    )
