"""The operator console: the live queue, the screen pop, the purpose's form, consent, and
saving a message or booking an appointment in a few keystrokes.

The queue streams over server-sent events: the generator polls the database once a second
(no other infrastructure) and sends the rendered list when it changes. The queue shows no
personal data: account, waiting time, whether a number was presented.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hmac
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from permanence.accounts.service import mandate_by_id
from permanence.calls import service as calls
from permanence.calls.notice_sms import notice_link, send_notice, sms_configured
from permanence.consents import service as consents
from permanence.context import AccessContext, Role
from permanence.db import acting_for
from permanence.errors import (
    Conflict,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from permanence.messages import agenda
from permanence.messages import service as messages
from permanence.messages.service import (
    ConsentMissing,
    SubmissionRefused,
    UndeclaredDataInText,
)
from permanence.recordings import voicemails as recorded_voicemails
from permanence.routing import callbacks
from permanence.runtime import Runtime
from permanence.staff import auth, training
from permanence.staff.auth import AccountLocked, TooManyAttempts
from permanence.web.deps import (
    SESSION_COOKIE,
    CurrentRuntime,
    Principal,
    account_context,
    runtime,
    secure_cookies,
    unit_of_work,
)
from permanence.web.pages import console_desk as desk
from permanence.web.pages.findings import finding_texts, undeclared_field_texts
from permanence.web.pages.render import (
    TIMEZONE,
    SignInNeeded,
    Viewer,
    form_viewer,
    fragment,
    language,
    redirect,
    render,
    roles,
)

router = APIRouter(prefix="/console")

OPERATING = (Role.OPERATOR, Role.SUPERVISOR)
Operator = Annotated[Viewer, roles(*OPERATING)]
OperatorForm = Annotated[Viewer, roles(*OPERATING, form=True)]
FIELD_PREFIX = "f_"
POLL_SECONDS = 1.0
STREAM_SECONDS = 600  # the browser reconnects by itself; bounds a forgotten tab's stream
SLOTS_SHOWN = 12


def new_per_account(rt: Runtime, viewer: Viewer) -> list[tuple[uuid.UUID, str, int]]:
    """(account id, name, new voicemails) for each active account that has some."""
    out = []
    with rt.db.session(viewer.context("console:voicemails"), readonly=True) as s:
        for account in calls.each_active_account(s):
            with acting_for(s, account.id):
                n = recorded_voicemails.count_new(s)
            if n:
                out.append((account.id, account.name, n))
    return out


def _queue(rt: Runtime, viewer: Viewer) -> list[calls.QueuedCall]:
    with rt.db.session(viewer.context("console:queue"), readonly=True) as s:
        return calls.ringing_everywhere(s)


def _queue_html(request: Request, queue: list[calls.QueuedCall], viewer: Viewer) -> str:
    now = dt.datetime.now(dt.UTC)
    return fragment(request, "console/_queue.html", queue=queue, now=now, csrf=viewer.csrf_token)


@router.get("", response_class=HTMLResponse)
def console(request: Request, viewer: Operator, rt: CurrentRuntime) -> Response:
    return _console(request, viewer, rt, request.query_params.get("probleme"))


def _console(
    request: Request,
    viewer: Viewer,
    rt: Runtime,
    problem: str | None,
    status_code: int = 200,
    typed: dict[str, str] | None = None,
) -> Response:
    queue = _queue(rt, viewer)
    with rt.db.session(viewer.context("console:recent"), readonly=True) as s:
        mine = calls.handled_by(s, viewer.user_id)
        to_call_back = callbacks.pending(s, viewer.user_id)
    return render(
        request,
        "console/index.html",
        viewer,
        queue_html=_queue_html(request, queue, viewer),
        queue_size=len(queue),
        mine=mine,
        voicemails=new_per_account(rt, viewer),
        callbacks=to_call_back,
        called_back=request.query_params.get("rappel") == "1",
        problem=problem,
        typed=typed or {},
        status_code=status_code,
    )


@router.get("/flux")
async def queue_stream(request: Request, viewer: Operator, rt: CurrentRuntime) -> Response:
    """Server-sent events: ``queue`` with the rendered list whenever it changes."""
    token = viewer.principal.session_token
    assert token is not None

    def still_signed_in() -> bool:
        try:
            with rt.db.session(AccessContext.system("auth:session"), readonly=True) as s:
                auth.resolve_session(s, token)
            return True
        except NotAuthenticated:
            return False

    async def events() -> AsyncIterator[str]:
        last = None
        started = time.monotonic()
        checked = started
        yield "retry: 2000\n\n"
        while time.monotonic() - started < STREAM_SECONDS:
            if await request.is_disconnected():
                return
            if time.monotonic() - checked > 15:
                if not await run_in_threadpool(still_signed_in):
                    yield "event: signed-out\ndata: -\n\n"
                    return
                checked = time.monotonic()
            queue = await run_in_threadpool(_queue, rt, viewer)
            key = [(q.call_id, q.started_at) for q in queue]
            if key != last:
                last = key
                html = _queue_html(request, queue, viewer)
                data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
                yield f"event: queue\n{data}\n"
            else:
                yield ": keep-alive\n\n"
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post("/appels")
def enter_call(
    request: Request,
    viewer: OperatorForm,
    rt: CurrentRuntime,
    dialled: Annotated[str, Form(max_length=40)],
    caller_number: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """A call entered by hand (the telephony opens them by itself): opened and answered.
    A number no account owns, or one that is not a phone number, is said on the console,
    the numbers typed kept in the form (nothing is opened)."""
    typed = {"dialled": dialled, "caller_number": caller_number}
    try:
        with rt.db.session(viewer.context("console:call_open")) as s:
            opened = calls.open_call(
                s, rt.keyring, dialled=dialled, caller_number=caller_number or None
            )
            calls.answer(s, opened.call)
            target = f"/console/appels/{opened.account.id}/{opened.call.id}"
    except NotFound:
        return _console(request, viewer, rt, "unknown_number", 404, typed)
    except ValidationFailed:
        return _console(request, viewer, rt, "invalid_number", 422, typed)
    return redirect(target)


@router.post("/appels/{account_id}/{call_id}/prendre")
def take(
    account_id: uuid.UUID, call_id: uuid.UUID, viewer: OperatorForm, rt: CurrentRuntime
) -> Response:
    try:
        with unit_of_work(rt, viewer.principal, account_id, f"call:{call_id}") as s:
            calls.take_from_queue(s, call_id)
    except Conflict:
        return redirect("/console?probleme=taken")
    return redirect(f"/console/appels/{account_id}/{call_id}")


def _call_url(account_id: uuid.UUID, call_id: uuid.UUID, purpose: str | None = None) -> str:
    url = f"/console/appels/{account_id}/{call_id}"
    return f"{url}?motif={purpose}" if purpose else url


def _screen(
    request: Request,
    viewer: Viewer,
    rt: Runtime,
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    purpose: str | None,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problems: list[str] | None = None,
    confirm_needed: bool = False,
    status_code: int = 200,
    voicemail_id: uuid.UUID | None = None,
    history_reason: str | None = None,
    signed_in_again: bool = False,
) -> Response:
    history: desk.History | None = None
    with unit_of_work(rt, viewer.principal, account_id, f"call:{call_id}") as s:
        call = calls.get_call(s, call_id)
        pop = calls.screen_pop(s, rt.keyring, call)
        mandate = mandate_by_id(s, call.mandate_id)[1]
        form = messages.form_for_call(s, call_id, purpose) if purpose else None
        slots: list[tuple[dt.datetime, dt.datetime]] = []
        if form is not None and form.books_appointment:
            day = dt.datetime.now(TIMEZONE).date()
            for offset in range(14):
                slots.extend(agenda.free_slots(s, day + dt.timedelta(days=offset)))
                if len(slots) >= SLOTS_SHOWN:
                    break
            slots = slots[:SLOTS_SHOWN]
        if history_reason is not None:
            history = desk.caller_history(s, call, mandate, history_reason)
    shown = dict(values or {})
    slot_field = None
    focus = None
    if form is not None:
        if values is None:  # a purpose just picked: the known caller's fields are filled in
            shown = desk.prefill(form.purpose, pop.get("caller"))  # type: ignore[arg-type]
        if form.books_appointment:
            slot_field = desk.slot_field(form.purpose)
        fields = [f for f in form.fields if f.name != slot_field]
        focus = (
            None if errors or problems else desk.first_empty(fields, shown, form.books_appointment)
        )
    return render(
        request,
        "console/call.html",
        viewer,
        status_code=status_code,
        pop=pop,
        call=call,
        account_id=account_id,
        form=form,
        purpose=purpose,
        slots=slots,
        values=shown,
        errors=errors or {},
        slot_field=slot_field,
        focus=focus,
        instructions=desk.instructions(mandate, dt.datetime.now(TIMEZONE), language(request)),
        history=history,
        history_reasons=desk.HISTORY_REASONS,
        purpose_names=desk.purpose_labels(mandate),
        signed_in_again=signed_in_again,
        queue_html=_queue_html(request, _queue(rt, viewer), viewer),
        problems=problems or [],
        confirm_needed=confirm_needed,
        saved=request.query_params.get("enregistre"),
        resumed=signed_in_again or request.query_params.get("reconnecte") == "1",
        call_url=_call_url(account_id, call_id),
        voicemail_id=voicemail_id,
        notice_link=notice_link(mandate, rt.settings.public_base_url, call),
        sms_ready=sms_configured(rt.settings),
        number_known=call.from_sealed is not None,
    )


@router.get("/appels/{account_id}/{call_id}", response_class=HTMLResponse)
def screen_pop(
    request: Request,
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    viewer: Operator,
    rt: CurrentRuntime,
    motif: str | None = None,
    messagerie: uuid.UUID | None = None,
    historique: Annotated[
        str | None, Query(pattern="^(" + "|".join(desk.HISTORY_REASONS) + ")$")
    ] = None,
) -> Response:
    """The screen pop; with ``motif``, the form of that purpose; with ``messagerie``, the
    form writes that voicemail down (the message keeps the link, the voicemail is treated);
    with ``historique`` (a reason), the caller's recent history for this account (audited)."""
    return _screen(
        request,
        viewer,
        rt,
        account_id,
        call_id,
        motif,
        voicemail_id=messagerie,
        history_reason=historique,
    )


@router.post("/appels/{account_id}/{call_id}/mention-lue")
def notice_read(
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    viewer: OperatorForm,
    rt: CurrentRuntime,
    motif: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    with unit_of_work(rt, viewer.principal, account_id, f"call:{call_id}") as s:
        calls.mark_notice_read(s, calls.get_call(s, call_id))
    return redirect(_call_url(account_id, call_id, motif or None))


@router.post("/appels/{account_id}/{call_id}/consentement")
def give_consent(
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    viewer: OperatorForm,
    rt: CurrentRuntime,
    motif: Annotated[str, Form(max_length=64)],
    version: Annotated[str, Form(max_length=64)],
) -> Response:
    """The caller agreed, aloud, to the wording the operator read (its version is kept)."""
    with unit_of_work(rt, viewer.principal, account_id, f"call:{call_id}") as s:
        consents.give(s, call_id=call_id, purpose=motif, wording_version=version, channel="voice")
    return redirect(_call_url(account_id, call_id, motif))


async def _values(request: Request) -> dict[str, str]:
    form = await request.form()
    return {
        k[len(FIELD_PREFIX) :]: v
        for k, v in form.multi_items()
        if k.startswith(FIELD_PREFIX) and isinstance(v, str)
    }


@router.post("/appels/{account_id}/{call_id}/valider", response_class=HTMLResponse)
async def check_field(
    request: Request,
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    viewer: OperatorForm,
    rt: CurrentRuntime,
) -> Response:
    """Inline validation (htmx, on leaving a field): the error of the field just left."""
    form = await request.form()
    purpose = str(form.get("motif", ""))
    name = request.headers.get("hx-trigger-name", "")[len(FIELD_PREFIX) :]
    values = await _values(request)

    def check() -> list[Any]:
        with unit_of_work(rt, viewer.principal, account_id, f"call:{call_id}", readonly=True) as s:
            return messages.check_fields(s, call_id, purpose, values)

    errors = await run_in_threadpool(check)
    message = next((e.code for e in errors if e.field == name), None)
    return HTMLResponse(fragment(request, "console/_field_error.html", name=name, code=message))


def _field_errors(exc: SubmissionRefused) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in exc.errors:
        out.setdefault(e.field, e.code)
    return out


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


@router.post("/appels/{account_id}/{call_id}/notice-sms")
def send_notice_sms(
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    viewer: OperatorForm,
    rt: CurrentRuntime,
    motif: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """The caller asks for the full notice: sent by SMS to the call's number (the ledger)."""
    with unit_of_work(rt, viewer.principal, account_id, f"call:{call_id}") as s:
        call = calls.get_call(s, call_id)
        if call.notice_sms_at is None:  # a second click sends nothing more
            send_notice(s, rt.settings, call, via="operator")
    return redirect(_call_url(account_id, call_id, motif or None))


@router.post("/appels/{account_id}/{call_id}/enregistrement/arreter")
def stop_recording(
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    viewer: OperatorForm,
    rt: CurrentRuntime,
    motif: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """The caller objects to the recording: marked at once (anything still arriving is
    discarded), then the provider is asked to stop."""
    from permanence.telephony import service as telephony
    from permanence.telephony.api import telephony_api

    with unit_of_work(rt, viewer.principal, account_id, f"call:{call_id}", readonly=True) as s:
        calls.get_call(s, call_id)
    ctx = account_context(viewer.principal, account_id, f"call:{call_id}")
    telephony.stop_recording(rt, lambda: telephony_api(rt), ctx, call_id)
    return redirect(_call_url(account_id, call_id, motif or None))


@router.post("/appels/{account_id}/{call_id}/terminer")
def finish(
    account_id: uuid.UUID, call_id: uuid.UUID, viewer: OperatorForm, rt: CurrentRuntime
) -> Response:
    with unit_of_work(rt, viewer.principal, account_id, f"call:{call_id}") as s:
        calls.complete(s, calls.get_call(s, call_id))
    return redirect("/console")
