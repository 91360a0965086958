"""Signing in and out, re-authentication before sensitive actions, the language choice."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import Response

from permanence.context import STAFF_ROLES, AccessContext
from permanence.errors import NotAuthenticated
from permanence.staff import auth, training
from permanence.staff.auth import AccountLocked, TooManyAttempts
from permanence.web.deps import SESSION_COOKIE, CurrentRuntime, forget_session, secure_cookies
from permanence.web.pages.render import (
    LANG_COOKIE,
    LANGUAGES,
    SIGNIN_CSRF_COOKIE,
    FormViewer,
    PageViewer,
    home_of,
    redirect,
    render,
    safe_next,
)

router = APIRouter()


@router.get("/")
def home(request: Request, rt: CurrentRuntime) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        try:
            with rt.db.session(AccessContext.system("auth:session"), readonly=True) as s:
                user, _ws = auth.resolve_session(s, token)
                return redirect(home_of(user.role))
        except NotAuthenticated:
            pass
    return redirect("/connexion")


def signed_out_form(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> Response:
    """A form for people not signed in (sign-in, forgotten password): a fresh CSRF token, in
    the page and in a cookie scoped to /connexion (checked by ``signed_out_csrf_ok``)."""
    token = secrets.token_urlsafe(24)
    response = render(request, template, status_code=status_code, csrf=token, **context)
    response.set_cookie(
        SIGNIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        max_age=3600,
        path="/connexion",
    )
    return response


def signed_out_csrf_ok(request: Request, sent: str) -> bool:
    """Whether the form's token is the one ``signed_out_form`` put in the cookie."""
    expected = request.cookies.get(SIGNIN_CSRF_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected.encode(), sent.encode())


def _signin_form(
    request: Request, *, status_code: int = 200, problem: str | None = None, email: str = ""
) -> Response:
    return signed_out_form(
        request,
        "signin.html",
        status_code=status_code,
        problem=problem,
        email=email,
        suite=safe_next(request.query_params.get("suite"), ""),
    )


@router.get("/connexion")
def signin_page(request: Request) -> Response:
    return _signin_form(request)


@router.post("/connexion")
def signin(
    request: Request,
    rt: CurrentRuntime,
    background: BackgroundTasks,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=200)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    totp: Annotated[str, Form(max_length=12)] = "",
    suite: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    if not signed_out_csrf_ok(request, csrf_token):
        return _signin_form(request, status_code=403, problem="expired", email=email)
    client = request.client.host if request.client else None
    try:
        with rt.db.session(AccessContext.system("auth:login")) as s:
            signed = auth.sign_in(
                s,
                rt.keyring,
                email=email,
                password=password,
                totp_code=totp or None,
                client=client,
            )
            role = signed.user.role if signed else None
            # Staff sign the current confidentiality undertaking before anything else.
            unsigned = (
                signed is not None
                and role in STAFF_ROLES
                and not training.undertaking_signed(s, signed.user.id)
            )
    except TooManyAttempts as exc:
        return _signin_form(
            request, status_code=429, problem=f"wait:{exc.retry_after}", email=email
        )
    except AccountLocked:
        return _signin_form(request, status_code=423, problem="locked", email=email)
    if signed is None or role is None:
        from permanence.staff.credentials_api import lock_after_refusal

        lock_after_refusal(rt, email, background)
        return _signin_form(request, status_code=401, problem="refused", email=email)
    target = safe_next(suite, home_of(role))
    if unsigned:
        target = "/engagement?suite=" + quote(target, safe="/")
    response = redirect(target)
    response.set_cookie(
        SESSION_COOKIE,
        signed.token,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        max_age=int(auth.ABSOLUTE_TIMEOUT.total_seconds()),
        path="/",
    )
    response.delete_cookie(SIGNIN_CSRF_COOKIE, path="/connexion")
    return response


@router.post("/deconnexion")
def signout(viewer: FormViewer, rt: CurrentRuntime) -> Response:
    token = viewer.principal.session_token
    if token:
        with rt.db.session(viewer.context("auth:logout")) as s:
            auth.sign_out(s, token)
        forget_session(token)
    response = redirect("/connexion")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/confirmer")
def reauth_page(request: Request, viewer: PageViewer) -> Response:
    return render(
        request,
        "reauth.html",
        viewer,
        suite=safe_next(request.query_params.get("suite"), home_of(viewer.role)),
        problem=None,
    )


@router.post("/confirmer")
def reauth(
    request: Request,
    viewer: FormViewer,
    rt: CurrentRuntime,
    password: Annotated[str, Form(max_length=200)],
    totp: Annotated[str, Form(max_length=12)] = "",
    suite: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Confirm identity (password, and code for staff) before a sensitive action."""
    target = safe_next(suite, home_of(viewer.role))
    token = viewer.principal.session_token
    assert token is not None
    try:
        with rt.db.session(viewer.context("auth:reauth")) as s:
            user, ws = auth.resolve_session(s, token)
            ok = auth.reauthenticate(
                s, rt.keyring, user, ws, password=password, totp_code=totp or None
            )
    except TooManyAttempts as exc:
        return render(
            request,
            "reauth.html",
            viewer,
            status_code=429,
            suite=target,
            problem=f"wait:{exc.retry_after}",
        )
    if not ok:
        return render(
            request, "reauth.html", viewer, status_code=401, suite=target, problem="refused"
        )
    return redirect(target)


@router.get("/langue/{lang}")
def choose_language(lang: str, request: Request) -> Response:
    """Switch the interface language (a cookie; French when unset and the browser does not
    prefer English)."""
    response = redirect(safe_next(request.query_params.get("suite"), "/"))
    if lang in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            lang,
            samesite="lax",
            secure=secure_cookies(request),
            max_age=365 * 86400,
            path="/",
        )
    return response
