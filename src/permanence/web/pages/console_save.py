"""The console's save: the purpose's form written down as a message, an appointment in the
chosen slot, or a voicemail's message, and, when the operator's session ended while they
typed, the sign-in-again page that carries the form and saves it once signed in.

Kept apart from ``console.py`` (the queue, the screen pop and the call's other actions), whose
screen it shows again when the form is refused; ``web.app`` lists its routes right after it.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import secrets
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from permanence.accounts.service import mandate_by_id
from permanence.calls import service as calls
from permanence.context import AccessContext
from permanence.errors import Conflict, PermissionDenied, ValidationFailed
from permanence.messages import service as messages
from permanence.messages.service import (
    ConsentMissing,
    SubmissionRefused,
    UndeclaredDataInText,
)
from permanence.runtime import Runtime
from permanence.staff import auth, training
from permanence.staff.auth import AccountLocked, TooManyAttempts
from permanence.web.deps import (
    SESSION_COOKIE,
    CurrentRuntime,
    Principal,
    runtime,
    secure_cookies,
    unit_of_work,
)
from permanence.web.pages import console_desk as desk
from permanence.web.pages.console import FIELD_PREFIX, OPERATING, _field_errors, _screen
from permanence.web.pages.findings import finding_texts, undeclared_field_texts
from permanence.web.pages.render import (
    TIMEZONE,
    SignInNeeded,
    Viewer,
    form_viewer,
    language,
    redirect,
    render,
)

router = APIRouter(prefix="/console")


async def _viewer_or_none(
    request: Request, rt: Annotated[Runtime, Depends(runtime)]
) -> Viewer | None:
    """The operator saving a form, or None when their session has ended meanwhile (the
    typed text is then kept: see ``save``)."""
    try:
        viewer = await form_viewer(request, rt)
    except SignInNeeded:
        return None
    if viewer.role not in OPERATING:
        raise PermissionDenied("your role does not give access to this page")
    return viewer


# The pre-session CSRF cookie of the sign-in-again form (double submit, like /connexion).
RESUME_COOKIE = "permanence_reprise"
RESUME_PATH = "/console/reprise"
# Form fields carried through the sign-in-again page (besides the purpose's ``f_*`` fields).
CARRIED = ("motif", "urgent", "confirmer", "creneau", "creneau_libre", "messagerie")


def _signin_again(
    request: Request,
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    carried: list[tuple[str, str]],
    *,
    problem: str | None = None,
    email: str = "",
    status_code: int = 401,
) -> Response:
    """The session ended while a form was being filled: sign in again on this page, which
    carries what was typed; signing in saves it. The values go back only to the browser that
    sent them, on a page that is never cached, and are logged nowhere."""
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "console/signin_again.html",
        status_code=status_code,
        csrf=token,
        carried=carried,
        problem=problem,
        email=email,
        account_id=account_id,
        call_id=call_id,
    )
    response.set_cookie(
        RESUME_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        max_age=3600,
        path=RESUME_PATH,
    )
    return response


def _carried(form: Any) -> list[tuple[str, str]]:
    return [
        (k, v)
        for k, v in form.multi_items()
        if isinstance(v, str) and (k.startswith(FIELD_PREFIX) or k in CARRIED)
    ]


@router.post("/appels/{account_id}/{call_id}/enregistrer")
async def save(
    request: Request,
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    viewer: Annotated[Viewer | None, Depends(_viewer_or_none)],
    rt: CurrentRuntime,
) -> Response:
    """Save the purpose's form: a message, or an appointment in the chosen slot. A session
    that ended meanwhile gets the sign-in-again page, which keeps what was typed."""
    form = await request.form()
    if viewer is None:
        return _signin_again(request, account_id, call_id, _carried(form))
    return await _save(request, account_id, call_id, viewer, rt, form)


@router.post("/reprise/{account_id}/{call_id}")
async def resume(
    request: Request,
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    rt: CurrentRuntime,
    background: BackgroundTasks,
) -> Response:
    """Sign in again from the page that carries a typed form, then save that form."""
    form = await request.form()
    carried = _carried(form)
    email = str(form.get("email", ""))[:254]
    sent = str(form.get("csrf_token", ""))
    expected = request.cookies.get(RESUME_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), sent.encode()):
        return _signin_again(
            request, account_id, call_id, carried, problem="expired", email=email, status_code=403
        )
    client = request.client.host if request.client else None
    password = str(form.get("password", ""))[:200]
    totp = str(form.get("totp", ""))[:12] or None

    def attempt() -> tuple[auth.SignedIn | None, bool]:
        with rt.db.session(AccessContext.system("auth:login")) as s:
            signed = auth.sign_in(
                s, rt.keyring, email=email, password=password, totp_code=totp, client=client
            )
            unsigned = signed is not None and not training.undertaking_signed(s, signed.user.id)
            return signed, unsigned

    try:
        signed, unsigned = await run_in_threadpool(attempt)
    except TooManyAttempts as exc:
        return _signin_again(
            request,
            account_id,
            call_id,
            carried,
            problem=f"wait:{exc.retry_after}",
            email=email,
            status_code=429,
        )
    except AccountLocked:
        return _signin_again(
            request, account_id, call_id, carried, problem="locked", email=email, status_code=423
        )
    if signed is None:
        from permanence.staff.credentials_api import lock_after_refusal

        # As on the sign-in page: repeated failures lock the account and mail the unlock link.
        await run_in_threadpool(lock_after_refusal, rt, email, background)
    if signed is None or signed.user.role not in OPERATING or unsigned:
        return _signin_again(request, account_id, call_id, carried, problem="refused", email=email)
    viewer = Viewer(
        Principal(
            user_id=signed.user.id,
            role=signed.user.role,
            account_id=signed.user.account_id,
            scopes=None,
            session_token=signed.token,
            csrf_token=signed.csrf_token,
        ),
        signed.user.display_name,
        signed.csrf_token,
    )
    response = await _save(request, account_id, call_id, viewer, rt, form, signed_in_again=True)
    response.set_cookie(
        SESSION_COOKIE,
        signed.token,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        max_age=int(auth.ABSOLUTE_TIMEOUT.total_seconds()),
        path="/",
    )
    response.delete_cookie(RESUME_COOKIE, path=RESUME_PATH)
    return response


async def _save(
    request: Request,
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    viewer: Viewer,
    rt: Runtime,
    form: Any,
    *,
    signed_in_again: bool = False,
) -> Response:
    purpose = str(form.get("motif", ""))
    values = {
        k[len(FIELD_PREFIX) :]: v
        for k, v in form.multi_items()
        if k.startswith(FIELD_PREFIX) and isinstance(v, str)
    }
    urgent = form.get("urgent") == "oui"
    confirm = form.get("confirmer") == "oui"
    slot = str(form.get("creneau", ""))
    typed_slot = str(form.get("creneau_libre", ""))
    try:
        voicemail_id = uuid.UUID(str(form["messagerie"])) if form.get("messagerie") else None
    except ValueError:
        raise ValidationFailed("messagerie must be a voicemail id") from None

    def store() -> str:
        with unit_of_work(rt, viewer.principal, account_id, f"call:{call_id}") as s:
            call = calls.get_call(s, call_id)
            if call.caller_id is None:
                raise ValidationFailed("this call has no caller")
            call_form = messages.form_for_call(s, call_id, purpose)
            if call_form.books_appointment:
                if slot:
                    starts, ends = _slot(slot)
                else:
                    minutes = mandate_by_id(s, call.mandate_id)[1].agenda.slot_minutes
                    starts, ends = _typed_slot(typed_slot, minutes)
                # The slot is asked once: it fills the purpose's date-time field.
                named = desk.slot_field(call_form.purpose)
                if named and not values.get(named):
                    values[named] = starts.isoformat()
                messages.book_appointment(
                    s,
                    rt.keyring,
                    caller_id=call.caller_id,
                    purpose=purpose,
                    starts_at=starts,
                    ends_at=ends,
                    values=values,
                    call_id=call.id,
                    confirm_undeclared=confirm,
                )
                return "rendez-vous"
            if voicemail_id is not None:
                from permanence.recordings import voicemails

                voicemails.to_message(
                    s,
                    rt.keyring,
                    voicemail_id,
                    purpose=purpose,
                    values=values,
                    urgent=urgent,
                    confirm_undeclared=confirm,
                )
                return "messagerie"
            messages.take_message(
                s,
                rt.keyring,
                caller_id=call.caller_id,
                purpose=purpose,
                values=values,
                call_id=call.id,
                confirm_undeclared=confirm,
                urgent=urgent,
            )
            return "message"

    redo = functools.partial(
        _screen,
        request,
        viewer,
        rt,
        account_id,
        call_id,
        purpose,
        values=values,
        voicemail_id=voicemail_id,
        signed_in_again=signed_in_again,
    )
    try:
        kind = await run_in_threadpool(store)
    except SubmissionRefused as exc:
        return await run_in_threadpool(
            redo,
            errors=_field_errors(exc),
            problems=undeclared_field_texts(exc.errors, language(request)),
            status_code=422,
        )
    except UndeclaredDataInText as exc:
        refused = any(f.refused for f in exc.findings)
        return await run_in_threadpool(
            redo,
            problems=finding_texts(exc.findings, language(request)),
            confirm_needed=not refused,
            status_code=422,
        )
    except ConsentMissing:
        return await run_in_threadpool(redo, problems=["consent_required"], status_code=422)
    except SlotMissing:
        return await run_in_threadpool(redo, problems=["slot_missing"], status_code=422)
    except Conflict:
        taken = "voicemail_treated" if voicemail_id is not None else "slot_taken"
        return await run_in_threadpool(redo, problems=[taken], status_code=409)
    except ValidationFailed as exc:
        return await run_in_threadpool(redo, problems=exc.problems, status_code=exc.status_code)
    if kind == "messagerie":
        return redirect(f"/console/messagerie-vocale/{account_id}?enregistre=message")
    again = "&reconnecte=1" if signed_in_again else ""
    return redirect(f"/console/appels/{account_id}/{call_id}?enregistre={kind}{again}")


class SlotMissing(ValidationFailed):
    pass


def _slot(value: str) -> tuple[dt.datetime, dt.datetime]:
    start, _, end = value.partition("/")
    try:
        starts, ends = dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)
    except ValueError:
        raise SlotMissing("choose a slot for the appointment") from None
    if starts.tzinfo is None or ends.tzinfo is None:
        raise SlotMissing("choose a slot for the appointment")
    return starts, ends


def _typed_slot(value: str, minutes: int) -> tuple[dt.datetime, dt.datetime]:
    """A time typed when the agenda offers no free slot (``datetime-local``, Paris time)."""
    try:
        starts = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SlotMissing("choose a slot for the appointment") from None
    if starts.tzinfo is None:
        starts = starts.replace(tzinfo=TIMEZONE)
    return starts, starts + dt.timedelta(minutes=minutes)
