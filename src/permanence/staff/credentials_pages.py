"""Pages for credentials: every signed-in person's password and security page (change the
password, recovery codes, a new authenticator); before sign-in, the forgotten password and
the e-mailed reset and unlock links; an administrator's page on a user's sign-in (reset,
unlock). The services are in staff/credentials.py; see docs/adr/0014.

The e-mailed links carry their token in the path: opening one only shows a form (mail
scanners that follow links spend nothing); the form's POST spends it.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import Response

from permanence.context import STAFF_ROLES, AccessContext, Role
from permanence.errors import NotFound, PermissionDenied, ValidationFailed
from permanence.staff import auth, credentials, mails
from permanence.staff.auth import TooManyAttempts
from permanence.staff.model import User
from permanence.staff.passwords import WeakPassword
from permanence.staff.signin_pages import signed_out_csrf_ok, signed_out_form
from permanence.web.deps import CurrentRuntime, forget_user, session_of
from permanence.web.pages.render import (
    FormViewer,
    PageViewer,
    Viewer,
    reauth_redirect,
    redirect,
    render,
    roles,
)

router = APIRouter()


def N_(message: str) -> str:
    """Marks a message for extraction; translated where it is shown."""
    return message


# A refused password, said in the reader's language (keys: staff.passwords.REASONS).
PASSWORD_MESSAGES = {
    "too_short": N_("This password is too short: use at least 8 characters."),
    "too_long": N_("This password is too long: use at most 128 characters."),
    "common": N_("This password is among the most common ones: attackers try those first."),
    "personal": N_("This password contains your e-mail address or your name."),
    "product": N_("This password contains the name of this service."),
    "repeated": N_(
        "This password is too easy to guess: it repeats the same characters (like aaaaaaaa)."
    ),
    "sequence": N_("This password is too easy to guess: it follows a sequence like abcd or 1234."),
    "keyboard": N_("This password is too easy to guess: it follows a row of keys (like azerty)."),
    "date": N_("This password is too easy to guess: it is mostly a date or a year."),
    "guessable": N_(
        "This password is too easy to guess: make it longer, for example with a few words."
    ),
    "mismatch": N_("The two new passwords differ: type the same one twice."),
    "same": N_("The new password must differ from the current one."),
}

Admin = Annotated[Viewer, roles(Role.ADMIN)]
AdminForm = Annotated[Viewer, roles(Role.ADMIN, form=True)]


# -- the signed-in person's page ---------------------------------------------------------------


def _security_page(
    request: Request,
    viewer: Viewer,
    rt: CurrentRuntime,
    *,
    status_code: int = 200,
    problem: str | None = None,
    codes: list[str] | None = None,
) -> Response:
    with rt.db.session(viewer.context("auth:security_page"), readonly=True) as s:
        user = s.get(User, viewer.user_id)
        assert user is not None
        has_totp = user.totp_sealed is not None
        remaining = credentials.remaining_recovery_codes(s, user.id) if has_totp else 0
        email = user.email
    return render(
        request,
        "account/security.html",
        viewer,
        status_code=status_code,
        problem=problem,
        messages=PASSWORD_MESSAGES,
        has_totp=has_totp,
        remaining=remaining,
        codes=codes or [],
        email=email,
        done=request.query_params.get("fait", ""),
    )


@router.get("/compte/securite")
def security_page(request: Request, viewer: PageViewer, rt: CurrentRuntime) -> Response:
    return _security_page(request, viewer, rt)


@router.post("/compte/mot-de-passe")
def change_password(
    request: Request,
    viewer: FormViewer,
    rt: CurrentRuntime,
    background: BackgroundTasks,
    actuel: Annotated[str, Form(max_length=200)],
    nouveau: Annotated[str, Form(max_length=200)],
    confirmation: Annotated[str, Form(max_length=200)],
) -> Response:
    """Change one's password with the current one; the other sessions are signed out."""

    def again(status: int, problem: str) -> Response:
        return _security_page(request, viewer, rt, status_code=status, problem=problem)

    if nouveau != confirmation:
        return again(422, "mismatch")
    try:
        with rt.db.session(viewer.context("auth:password_change")) as s:
            user = s.get(User, viewer.user_id)
            assert user is not None
            ok = credentials.change_own_password(
                s, user, current=actuel, new=nouveau, keep_token=viewer.principal.session_token
            )
            email = user.email
    except TooManyAttempts as exc:
        return again(429, f"wait:{exc.retry_after}")
    except WeakPassword as exc:
        return again(422, exc.reason)
    except ValidationFailed:
        return again(422, "same")
    if not ok:
        return again(401, "refused")
    forget_user(viewer.user_id)
    background.add_task(mails.send_notice, rt.settings, "password_changed", email)
    return redirect("/compte/securite?fait=mot-de-passe")


@router.post("/compte/codes-de-secours")
def new_recovery_codes(
    request: Request, viewer: FormViewer, rt: CurrentRuntime, background: BackgroundTasks
) -> Response:
    """A new set of recovery codes, shown once (after a recent re-authentication)."""
    try:
        auth.require_recent_auth(session_of(rt, viewer.principal))
    except PermissionDenied:
        return reauth_redirect("/compte/securite")
    with rt.db.session(viewer.context("auth:recovery_codes")) as s:
        user = s.get(User, viewer.user_id)
        assert user is not None
        codes = credentials.generate_recovery_codes(
            s, user, keep_token=viewer.principal.session_token
        )
        email = user.email
    forget_user(viewer.user_id)
    background.add_task(mails.send_notice, rt.settings, "second_factor_changed", email)
    return _security_page(request, viewer, rt, codes=codes)


def _enrolment_page(
    request: Request,
    viewer: Viewer,
    rt: CurrentRuntime,
    *,
    sealed: str | None = None,
    problem: str | None = None,
) -> Response:
    with rt.db.session(viewer.context("auth:mfa_enrolment"), readonly=True) as s:
        user = s.get(User, viewer.user_id)
        assert user is not None
        if user.totp_sealed is None:
            raise NotFound("no authenticator to replace")
        pending = (
            credentials.reopen_enrolment(rt.keyring, user, sealed)
            if sealed
            else credentials.start_enrolment(rt.keyring, user)
        )
    return render(
        request,
        "account/authenticator.html",
        viewer,
        status_code=401 if problem else 200,
        pending=pending,
        problem=problem,
    )


@router.get("/compte/authentificateur")
def enrolment_page(request: Request, viewer: PageViewer, rt: CurrentRuntime) -> Response:
    """A new authenticator key (after a recent re-authentication), not in force until a code
    from it is given."""
    try:
        auth.require_recent_auth(session_of(rt, viewer.principal))
    except PermissionDenied:
        return reauth_redirect("/compte/authentificateur")
    return _enrolment_page(request, viewer, rt)


@router.post("/compte/authentificateur")
def enrol(
    request: Request,
    viewer: FormViewer,
    rt: CurrentRuntime,
    background: BackgroundTasks,
    en_attente: Annotated[str, Form(max_length=500)],
    code: Annotated[str, Form(max_length=12)],
) -> Response:
    try:
        auth.require_recent_auth(session_of(rt, viewer.principal))
    except PermissionDenied:
        return reauth_redirect("/compte/authentificateur")
    with rt.db.session(viewer.context("auth:mfa_reenrol")) as s:
        user = s.get(User, viewer.user_id)
        assert user is not None
        ok = credentials.finish_enrolment(
            s,
            rt.keyring,
            user,
            sealed=en_attente,
            code=code,
            keep_token=viewer.principal.session_token,
        )
        email = user.email
    if not ok:
        return _enrolment_page(request, viewer, rt, sealed=en_attente, problem="refused")
    forget_user(viewer.user_id)
    background.add_task(mails.send_notice, rt.settings, "second_factor_changed", email)
    return redirect("/compte/securite?fait=authentificateur")


# -- before sign-in: forgotten password, reset and unlock links ---------------------------------


def _forgotten_form(request: Request, *, status_code: int = 200, problem: str = "") -> Response:
    return signed_out_form(
        request, "account/forgotten.html", status_code=status_code, sent=False, problem=problem
    )


@router.get("/connexion/mot-de-passe-oublie")
def forgotten_page(request: Request) -> Response:
    return _forgotten_form(request)


@router.post("/connexion/mot-de-passe-oublie")
def forgotten(
    request: Request,
    rt: CurrentRuntime,
    background: BackgroundTasks,
    email: Annotated[str, Form(max_length=254)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Send a reset link; the answer is the same whether the address has an account (and the
    e-mail leaves after it, so its time tells nothing either)."""
    if not signed_out_csrf_ok(request, csrf_token):
        return _forgotten_form(request, status_code=403, problem="expired")
    with rt.db.session(AccessContext.system("auth:reset_request")) as s:
        link = credentials.request_reset(s, email)
    if link is not None:
        background.add_task(mails.send_link, rt.settings, "reset", link)
    return render(request, "account/forgotten.html", sent=True, problem="")


def _link_result(request: Request, outcome: str, status_code: int = 200) -> Response:
    return render(request, "account/link_result.html", status_code=status_code, outcome=outcome)


def _link_ok(rt: CurrentRuntime, token: str, purpose: str) -> bool:
    with rt.db.session(AccessContext.system("auth:link"), readonly=True) as s:
        return credentials.link_is_valid(s, token, purpose)


@router.get("/connexion/reinitialiser/{token}")
def reset_page(token: str, request: Request, rt: CurrentRuntime) -> Response:
    if not _link_ok(rt, token, "reset"):
        return _link_result(request, "invalid", 404)
    return render(
        request, "account/reset.html", token=token, problem=None, messages=PASSWORD_MESSAGES
    )


@router.post("/connexion/reinitialiser/{token}")
def reset(
    token: str,
    request: Request,
    rt: CurrentRuntime,
    background: BackgroundTasks,
    nouveau: Annotated[str, Form(max_length=200)],
    confirmation: Annotated[str, Form(max_length=200)],
) -> Response:
    """Spend the link: the new password, every session of the account signed out."""

    def again(problem: str) -> Response:
        return render(
            request,
            "account/reset.html",
            status_code=422,
            token=token,
            problem=problem,
            messages=PASSWORD_MESSAGES,
        )

    if nouveau != confirmation:
        return (
            again("mismatch")
            if _link_ok(rt, token, "reset")
            else _link_result(request, "invalid", 404)
        )
    try:
        with rt.db.session(AccessContext.system("auth:reset")) as s:
            user = credentials.reset_password(s, token, nouveau)
            user_id, email = user.id, user.email
    except WeakPassword as exc:
        return again(exc.reason)
    except NotFound:
        return _link_result(request, "invalid", 404)
    forget_user(user_id)
    background.add_task(mails.send_notice, rt.settings, "password_changed", email)
    return _link_result(request, "reset")


@router.get("/connexion/deverrouiller/{token}")
def unlock_page(token: str, request: Request, rt: CurrentRuntime) -> Response:
    if not _link_ok(rt, token, "unlock"):
        return _link_result(request, "invalid", 404)
    return render(request, "account/unlock.html", token=token)


@router.post("/connexion/deverrouiller/{token}")
def unlock(token: str, request: Request, rt: CurrentRuntime) -> Response:
    try:
        with rt.db.session(AccessContext.system("auth:unlock")) as s:
            credentials.unlock_with_link(s, token)
    except NotFound:
        return _link_result(request, "invalid", 404)
    return _link_result(request, "unlocked")


# -- an administrator's page on a user's sign-in ------------------------------------------------


def _access_page(
    request: Request,
    viewer: Viewer,
    rt: CurrentRuntime,
    user_id: uuid.UUID,
    *,
    done: str = "",
    result: object = None,
) -> Response:
    with rt.db.session(viewer.context("admin:user_access"), readonly=True) as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFound("no such user")
        locked = credentials.is_locked(s, user)
        remaining = credentials.remaining_recovery_codes(s, user.id)
        return render(
            request,
            "admin/user_access.html",
            viewer,
            user=user,
            locked=locked,
            remaining=remaining,
            is_staff_user=user.role in STAFF_ROLES,
            done=done or request.query_params.get("fait", ""),
            result=result,
        )


@router.get("/admin/utilisateurs/{user_id}/acces")
def access_page(
    user_id: uuid.UUID, request: Request, viewer: Admin, rt: CurrentRuntime
) -> Response:
    return _access_page(request, viewer, rt, user_id)


@router.post("/admin/utilisateurs/{user_id}/reinitialiser")
def admin_reset(
    user_id: uuid.UUID,
    request: Request,
    viewer: AdminForm,
    rt: CurrentRuntime,
    nouvel_authentificateur: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Reset a staff member's password (after a recent re-authentication): see the service."""
    try:
        auth.require_recent_auth(session_of(rt, viewer.principal))
    except PermissionDenied:
        return reauth_redirect(f"/admin/utilisateurs/{user_id}/acces")
    with rt.db.session(viewer.context("admin:password_reset")) as s:
        done = credentials.admin_reset(
            s, rt.keyring, user_id, new_authenticator=nouvel_authentificateur == "oui"
        )
    forget_user(user_id)
    emailed = mails.send_link(rt.settings, "admin_reset", done.link)
    result = {"emailed": emailed, "keys_revoked": done.keys_revoked, "totp_uri": done.totp_uri}
    return _access_page(request, viewer, rt, user_id, done="reset", result=result)


@router.post("/admin/utilisateurs/{user_id}/deverrouiller")
def admin_unlock(user_id: uuid.UUID, viewer: AdminForm, rt: CurrentRuntime) -> Response:
    with rt.db.session(viewer.context("admin:unlock")) as s:
        credentials.admin_unlock(s, user_id)
    return redirect(f"/admin/utilisateurs/{user_id}/acces?fait=unlocked")
