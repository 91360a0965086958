"""The operator console: the live queue, the screen pop, the purpose's form, consent, and
the call's other actions; saving the form (a message, an appointment, signing in again to
save it) is in ``console_save``.

The queue streams over server-sent events: the generator polls the database once a second
(no other infrastructure) and sends the rendered list when it changes. The queue shows no
personal data: account, waiting time, whether a number was presented.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
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
    ValidationFailed,
)
from permanence.messages import agenda
from permanence.messages import service as messages
from permanence.messages.service import (
    SubmissionRefused,
)
from permanence.recordings import voicemails as recorded_voicemails
from permanence.routing import callbacks
from permanence.routing.queue import take_from_queue
from permanence.runtime import Runtime
from permanence.staff import auth
from permanence.web.deps import (
    CurrentRuntime,
    account_context,
    unit_of_work,
)
from permanence.web.pages import console_desk as desk
from permanence.web.pages.render import (
    TIMEZONE,
    Viewer,
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
            take_from_queue(s, call_id)
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
    from permanence.recordings import provider_hooks as telephony
    from permanence.telephony.api import telephony_api

    with unit_of_work(rt, viewer.principal, account_id, f"call:{call_id}", readonly=True) as s:
        calls.get_call(s, call_id)
    ctx = account_context(viewer.principal, account_id, f"call:{call_id}")
    telephony.stop_recording(rt, lambda provider: telephony_api(rt, provider), ctx, call_id)
    return redirect(_call_url(account_id, call_id, motif or None))


@router.post("/appels/{account_id}/{call_id}/terminer")
def finish(
    account_id: uuid.UUID, call_id: uuid.UUID, viewer: OperatorForm, rt: CurrentRuntime
) -> Response:
    with unit_of_work(rt, viewer.principal, account_id, f"call:{call_id}") as s:
        calls.complete(s, calls.get_call(s, call_id))
    return redirect("/console")
