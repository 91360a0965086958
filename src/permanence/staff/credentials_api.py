"""The API of credentials: change a password, reset a forgotten one from an e-mailed link,
lift a lock, recovery codes; an administrator's reset and unlock of a staff member.

Every route here parses, opens one unit of work, calls staff/credentials.py, answers; the
e-mails leave after the commit (staff/mails.py). See docs/adr/0014.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends
from pydantic import BaseModel, Field

from permanence.context import AccessContext, Role
from permanence.errors import NotAuthenticated, ValidationFailed
from permanence.runtime import Runtime
from permanence.staff import auth, credentials, mails
from permanence.staff.model import User
from permanence.web.deps import (
    CurrentPrincipal,
    CurrentRuntime,
    Principal,
    forget_user,
    require,
    session_of,
)
from permanence.web.routes import ApiRoute
from permanence.web.schemas import Body, Problem

router = APIRouter(prefix="/api/v1", route_class=ApiRoute)
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 401, 403, 404, 409, 413, 415, 422, 423, 429)
}


class PasswordChangeIn(Body):
    current_password: str = Field(max_length=128)
    new_password: str = Field(max_length=128)


class ForgottenIn(Body):
    email: str = Field(max_length=254)


class ResetIn(Body):
    token: str = Field(max_length=100)
    new_password: str = Field(max_length=128)


class UnlockIn(Body):
    token: str = Field(max_length=100)


class RecoveryCodesOut(BaseModel):
    codes: list[str] = Field(description="shown once: store them somewhere safe")


class AdminResetIn(Body):
    new_authenticator: bool = False


class AdminResetOut(BaseModel):
    emailed: bool
    keys_revoked: int
    totp_uri: str | None = Field(
        default=None, description="the new authenticator's enrolment URI, shown once"
    )


def lock_after_refusal(rt: Runtime, email: str, background: BackgroundTasks) -> None:
    """After a refused sign-in (its failure committed): lock the account once the threshold
    is reached, and e-mail its owner the unlock link — after the answer, so that its time
    does not tell a real account from an unknown address."""
    with rt.db.session(AccessContext.system("auth:lock")) as s:
        link = credentials.lock_if_needed(s, email, rt.settings.signin_lock_threshold)
    if link is not None:
        background.add_task(mails.send_link, rt.settings, "unlock", link)


def _signed_in_user(p: Principal) -> tuple[uuid.UUID, str]:
    if p.user_id is None or p.session_token is None:
        raise ValidationFailed("this is for a signed-in person, not an API key")
    return p.user_id, p.session_token


@router.post("/auth/password", status_code=204, responses=ERRORS, tags=["auth"])
def change_password(
    body: PasswordChangeIn, p: CurrentPrincipal, rt: CurrentRuntime, background: BackgroundTasks
) -> None:
    """Change your password, giving the current one; your other sessions are closed and you
    are told by e-mail."""
    user_id, token = _signed_in_user(p)
    with rt.db.session(p.context("auth:password_change")) as s:
        user = s.get(User, user_id)
        assert user is not None
        ok = credentials.change_own_password(
            s, user, current=body.current_password, new=body.new_password, keep_token=token
        )
        email = user.email
    if not ok:
        raise NotAuthenticated("current password not recognised")
    forget_user(user_id)
    background.add_task(mails.send_notice, rt.settings, "password_changed", email)


@router.post("/auth/password/forgotten", status_code=202, responses=ERRORS, tags=["auth"])
def forgotten_password(
    body: ForgottenIn, rt: CurrentRuntime, background: BackgroundTasks
) -> dict[str, str]:
    """Ask for a reset link by e-mail. The answer is the same whether the address is known
    (the e-mail leaves after the answer: its time tells nothing either)."""
    with rt.db.session(AccessContext.system("auth:reset_request")) as s:
        link = credentials.request_reset(s, body.email)
    if link is not None:
        background.add_task(mails.send_link, rt.settings, "reset", link)
    return {"status": "if this address has an account, a link was sent to it"}


@router.post("/auth/password/reset", status_code=204, responses=ERRORS, tags=["auth"])
def reset_password(body: ResetIn, rt: CurrentRuntime, background: BackgroundTasks) -> None:
    """Choose a new password with the token of an e-mailed link (single use); every session
    of the account is closed."""
    with rt.db.session(AccessContext.system("auth:reset")) as s:
        user = credentials.reset_password(s, body.token, body.new_password)
        user_id, email = user.id, user.email
    forget_user(user_id)
    background.add_task(mails.send_notice, rt.settings, "password_changed", email)


@router.post("/auth/unlock", status_code=204, responses=ERRORS, tags=["auth"])
def unlock(body: UnlockIn, rt: CurrentRuntime) -> None:
    """Lift the lock with the token of the e-mailed link (single use)."""
    with rt.db.session(AccessContext.system("auth:unlock")) as s:
        credentials.unlock_with_link(s, body.token)


@router.post(
    "/auth/recovery-codes",
    status_code=201,
    response_model=RecoveryCodesOut,
    responses=ERRORS,
    tags=["auth"],
)
def recovery_codes(
    p: CurrentPrincipal, rt: CurrentRuntime, background: BackgroundTasks
) -> RecoveryCodesOut:
    """A new set of ten single-use recovery codes (the old ones stop working), after a recent
    re-authentication; your other sessions are closed."""
    user_id, token = _signed_in_user(p)
    auth.require_recent_auth(session_of(rt, p))
    with rt.db.session(p.context("auth:recovery_codes")) as s:
        user = s.get(User, user_id)
        assert user is not None
        codes = credentials.generate_recovery_codes(s, user, keep_token=token)
        email = user.email
    forget_user(user_id)
    background.add_task(mails.send_notice, rt.settings, "second_factor_changed", email)
    return RecoveryCodesOut(codes=codes)


@router.post(
    "/users/{user_id}/password-reset",
    response_model=AdminResetOut,
    responses=ERRORS,
    tags=["users"],
)
def admin_reset(
    user_id: uuid.UUID, body: AdminResetIn, p: Admin, rt: CurrentRuntime
) -> AdminResetOut:
    """An administrator resets a staff member: the old password stops working, every session
    is closed, the API keys they created are revoked, a reset link is e-mailed to them (and,
    with ``new_authenticator``, a new TOTP secret replaces theirs). Needs a recent
    re-authentication."""
    auth.require_recent_auth(session_of(rt, p))
    with rt.db.session(p.context("admin:password_reset")) as s:
        done = credentials.admin_reset(
            s, rt.keyring, user_id, new_authenticator=body.new_authenticator
        )
    forget_user(user_id)
    emailed = mails.send_link(rt.settings, "admin_reset", done.link)
    return AdminResetOut(emailed=emailed, keys_revoked=done.keys_revoked, totp_uri=done.totp_uri)


@router.post("/users/{user_id}/unlock", status_code=204, responses=ERRORS, tags=["users"])
def admin_unlock(user_id: uuid.UUID, p: Admin, rt: CurrentRuntime) -> None:
    """An administrator lifts a user's lock after repeated failed sign-ins."""
    with rt.db.session(p.context("admin:unlock")) as s:
        credentials.admin_unlock(s, user_id)
