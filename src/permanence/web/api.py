"""The JSON API, /api/v1. Each route parses, opens one unit of work, calls services, renders.

Account-scoped resources live under /api/v1/accounts/{account_id}/…: the access context is
built from the path (see deps.account_context), so an object of another account is a 404.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from permanence.accounts import service as accounts
from permanence.accounts.model import Account
from permanence.calls import service as calls
from permanence.calls.model import Call
from permanence.consents import service as consents
from permanence.consents.model import Consent
from permanence.context import AccessContext, Role
from permanence.errors import NotAuthenticated, NotFound, ValidationFailed
from permanence.mandates.forms import form_for
from permanence.messages import agenda
from permanence.messages import service as messages
from permanence.messages.model import Appointment, Message
from permanence.staff import auth
from permanence.staff.model import ApiKey, User
from permanence.web import schemas as S
from permanence.web.deps import (
    SESSION_COOKIE,
    CurrentPrincipal,
    CurrentRuntime,
    Principal,
    account_context,
    forget_session,
    require,
    secure_cookies,
    session_of,
    unit_of_work,
)

router = APIRouter(prefix="/api/v1")

OPERATING = (Role.OPERATOR, Role.SUPERVISOR)
READING = (Role.CLIENT, Role.OPERATOR, Role.SUPERVISOR, Role.DPO)
EVERYONE = (Role.CLIENT, Role.OPERATOR, Role.SUPERVISOR, Role.DPO, Role.ADMIN)
Operator = Annotated[Principal, Depends(require(*OPERATING))]
MessageReader = Annotated[Principal, Depends(require(*READING, scope="messages:read"))]
MessageWriter = Annotated[
    Principal, Depends(require(Role.CLIENT, Role.SUPERVISOR, scope="messages:write"))
]
AgendaReader = Annotated[Principal, Depends(require(*READING, scope="appointments:read"))]
AgendaWriter = Annotated[
    Principal,
    Depends(require(Role.CLIENT, Role.OPERATOR, Role.SUPERVISOR, scope="appointments:write")),
]
CalendarReader = Annotated[Principal, Depends(require(Role.CLIENT, scope="calendar:read"))]
AnyOne = Annotated[Principal, Depends(require(*EVERYONE))]
KeyManager = Annotated[Principal, Depends(require(Role.CLIENT, Role.ADMIN))]
ERRORS: dict[int | str, dict[str, Any]] = {
    # 400, 413 and 415 come from the input checks in front of every route (web/inputs.py).
    code: {"model": S.Problem}
    for code in (400, 401, 403, 404, 409, 413, 415, 422, 429)
}


# -- authentication ------------------------------------------------------------------------


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
        from permanence.web.credentials_api import lock_after_refusal

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


# -- accounts and mandates -----------------------------------------------------------------


def _account_out(a: Account) -> S.AccountOut:
    return S.AccountOut(id=a.id, slug=a.slug, name=a.name, kind=a.kind.value, status=a.status.value)


@router.get("/accounts", response_model=list[S.AccountOut], responses=ERRORS, tags=["accounts"])
def list_accounts(p: AnyOne, rt: CurrentRuntime) -> list[S.AccountOut]:
    with rt.db.session(p.context("api:accounts"), readonly=True) as s:
        if p.is_staff:
            return [_account_out(a) for a in accounts.list_accounts(s)]
        assert p.account_id is not None
        return [_account_out(accounts.get_account(s, p.account_id))]


@router.get(
    "/accounts/{account_id}/purposes",
    response_model=list[S.PurposeOut],
    responses=ERRORS,
    tags=["accounts"],
)
def purposes(account_id: uuid.UUID, p: AnyOne, rt: CurrentRuntime) -> list[S.PurposeOut]:
    """The current mandate's purposes, each with the form derived from it."""
    with unit_of_work(rt, p, account_id, "api:purposes", readonly=True) as s:
        _row, mandate = accounts.mandate_version(s, account_id)
    out = []
    for purpose in mandate.purposes:
        wording = purpose.consent_wording
        out.append(
            S.PurposeOut(
                code=purpose.code,
                label_fr=purpose.label_fr,
                label_en=purpose.label_en,
                legal_basis=purpose.legal_basis.value,
                needs_consent=consents.needs_consent(purpose),
                consent_wording_version=wording.version if wording else None,
                consent_wording_fr=wording.text_fr if wording else None,
                fields=[
                    S.FormFieldOut(
                        name=f.name,
                        label_fr=f.label_fr,
                        label_en=f.label_en,
                        input_type=f.input_type,
                        required=f.required,
                        max_length=f.max_length,
                        choices=list(f.choices) if f.choices else None,
                        special_category=f.special_category,
                    )
                    for f in form_for(mandate, purpose.code)
                ],
            )
        )
    return out


@router.get("/accounts/{account_id}/mandate", responses=ERRORS, tags=["accounts"])
def mandate(
    account_id: uuid.UUID,
    p: AnyOne,
    rt: CurrentRuntime,
    version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> Response:
    """The mandate (current version, or the one asked for), as JSON."""
    with unit_of_work(rt, p, account_id, "api:mandate", readonly=True) as s:
        text = accounts.export_mandate(s, account_id, version, "json")
    return Response(text, media_type="application/json")


# -- calls ---------------------------------------------------------------------------------


def _call_out(c: Call, known: bool | None = None) -> S.CallOut:
    return S.CallOut(
        id=c.id,
        account_id=c.account_id,
        status=c.status,
        started_at=c.started_at,
        answered_at=c.answered_at,
        ended_at=c.ended_at,
        notice_version=c.notice_version,
        notice_read_at=c.notice_read_at,
        known_caller=known,
        outcome=c.outcome,
        talk_s=c.talk_s,
    )


@router.post("/calls", response_model=S.CallOut, status_code=201, responses=ERRORS, tags=["calls"])
def open_call(body: S.CallIn, p: Operator, rt: CurrentRuntime) -> S.CallOut:
    """A call entered by hand (telephony opens them through its webhooks): the dialled number
    selects the account, the caller is recognised by number."""
    with rt.db.session(p.context("api:call_open")) as s:
        opened = calls.open_call(
            s, rt.keyring, dialled=body.dialled, caller_number=body.caller_number
        )
        return _call_out(opened.call, opened.known_caller)


@router.get(
    "/accounts/{account_id}/calls",
    response_model=list[S.CallOut],
    responses=ERRORS,
    tags=["calls"],
)
def list_calls(
    account_id: uuid.UUID,
    p: AnyOne,
    rt: CurrentRuntime,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[S.CallOut]:
    with unit_of_work(rt, p, account_id, "api:calls", readonly=True) as s:
        return [_call_out(c) for c in calls.recent(s, limit=limit, offset=offset)]


@router.get(
    "/accounts/{account_id}/calls/{call_id}",
    response_model=S.ScreenPop,
    responses=ERRORS,
    tags=["calls"],
)
def screen_pop(
    account_id: uuid.UUID, call_id: uuid.UUID, p: Operator, rt: CurrentRuntime
) -> S.ScreenPop:
    """The screen pop: account, greeting and notice, purposes, recording, known caller."""
    with unit_of_work(rt, p, account_id, f"call:{call_id}") as s:
        return S.ScreenPop.model_validate(
            calls.screen_pop(s, rt.keyring, calls.get_call(s, call_id))
        )


def _call_action(
    rt: CurrentRuntime, p: Principal, account_id: uuid.UUID, call_id: uuid.UUID, action: str
) -> S.CallOut:
    with unit_of_work(rt, p, account_id, f"call:{call_id}") as s:
        call = calls.get_call(s, call_id)
        {"answer": calls.answer, "notice-read": calls.mark_notice_read, "complete": calls.complete}[
            action
        ](s, call)
        return _call_out(call)


@router.post(
    "/accounts/{account_id}/calls/{call_id}/answer",
    response_model=S.CallOut,
    responses=ERRORS,
    tags=["calls"],
)
def answer(account_id: uuid.UUID, call_id: uuid.UUID, p: Operator, rt: CurrentRuntime) -> S.CallOut:
    return _call_action(rt, p, account_id, call_id, "answer")


@router.post(
    "/accounts/{account_id}/calls/{call_id}/notice-read",
    response_model=S.CallOut,
    responses=ERRORS,
    tags=["calls"],
)
def notice_read(
    account_id: uuid.UUID, call_id: uuid.UUID, p: Operator, rt: CurrentRuntime
) -> S.CallOut:
    """The operator read the layer-1 notice; the call keeps its version."""
    return _call_action(rt, p, account_id, call_id, "notice-read")


@router.post(
    "/accounts/{account_id}/calls/{call_id}/complete",
    response_model=S.CallOut,
    responses=ERRORS,
    tags=["calls"],
)
def complete(
    account_id: uuid.UUID, call_id: uuid.UUID, p: Operator, rt: CurrentRuntime
) -> S.CallOut:
    return _call_action(rt, p, account_id, call_id, "complete")


def _message_out(m: Message, fields: dict[str, Any] | None = None) -> S.MessageOut:
    return S.MessageOut(
        id=m.id,
        account_id=m.account_id,
        call_id=m.call_id,
        caller_id=m.caller_id,
        purpose=m.purpose,
        status=m.status,
        urgent=m.urgent,
        created_at=m.created_at,
        acknowledged_at=m.acknowledged_at,
        fields=fields,
    )


def _appointment_out(a: Appointment, fields: dict[str, Any] | None = None) -> S.AppointmentOut:
    return S.AppointmentOut(
        id=a.id,
        account_id=a.account_id,
        caller_id=a.caller_id,
        call_id=a.call_id,
        purpose=a.purpose,
        status=a.status,
        starts_at=a.starts_at,
        ends_at=a.ends_at,
        fields=fields,
    )


@router.post(
    "/accounts/{account_id}/calls/{call_id}/messages",
    response_model=S.MessageOut,
    status_code=201,
    responses=ERRORS,
    tags=["calls"],
)
def take_message(
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    body: S.MessageIn,
    p: Operator,
    rt: CurrentRuntime,
) -> S.MessageOut:
    """Take a message under a purpose: only the purpose's fields, validated, sealed."""
    with unit_of_work(rt, p, account_id, f"call:{call_id}") as s:
        call = calls.get_call(s, call_id)
        if call.caller_id is None:
            raise ValidationFailed("this call has no caller")
        msg = messages.take_message(
            s,
            rt.keyring,
            caller_id=call.caller_id,
            purpose=body.purpose,
            values=body.values,
            call_id=call.id,
            confirm_undeclared=body.confirm_undeclared,
            urgent=body.urgent,
        )
        return _message_out(msg)


@router.post(
    "/accounts/{account_id}/calls/{call_id}/appointments",
    response_model=S.AppointmentOut,
    status_code=201,
    responses=ERRORS,
    tags=["calls"],
)
def book(
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    body: S.AppointmentIn,
    p: Operator,
    rt: CurrentRuntime,
) -> S.AppointmentOut:
    with unit_of_work(rt, p, account_id, f"call:{call_id}") as s:
        call = calls.get_call(s, call_id)
        if call.caller_id is None:
            raise ValidationFailed("this call has no caller")
        appt = messages.book_appointment(
            s,
            rt.keyring,
            caller_id=call.caller_id,
            purpose=body.purpose,
            starts_at=_aware(body.starts_at, "starts_at"),
            ends_at=_aware(body.ends_at, "ends_at"),
            values=body.values,
            call_id=call.id,
            confirm_undeclared=body.confirm_undeclared,
        )
        return _appointment_out(appt)


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None:
        raise ValidationFailed(f"{name} needs a time zone offset (e.g. 2030-01-07T09:00:00+01:00)")
    return value


@router.post(
    "/accounts/{account_id}/calls/{call_id}/consents",
    response_model=S.ConsentOut,
    status_code=201,
    responses=ERRORS,
    tags=["consents"],
)
def give_consent(
    account_id: uuid.UUID,
    call_id: uuid.UUID,
    body: S.ConsentIn,
    p: Operator,
    rt: CurrentRuntime,
) -> S.ConsentOut:
    """Record the caller's consent to a purpose's wording (the version read)."""
    with unit_of_work(rt, p, account_id, f"call:{call_id}") as s:
        c = consents.give(
            s,
            call_id=call_id,
            purpose=body.purpose,
            wording_version=body.wording_version,
            channel=body.channel,
        )
        return _consent_out(c)


def _consent_out(c: Consent) -> S.ConsentOut:
    return S.ConsentOut(
        id=c.id,
        caller_id=c.caller_id,
        call_id=c.call_id,
        purpose=c.purpose,
        wording_version=c.wording_version,
        channel=c.channel,
        given_at=c.given_at,
        withdrawn_at=c.withdrawn_at,
    )


@router.post(
    "/accounts/{account_id}/consents/{consent_id}/withdraw",
    response_model=S.ConsentOut,
    responses=ERRORS,
    tags=["consents"],
)
def withdraw_consent(
    account_id: uuid.UUID,
    consent_id: uuid.UUID,
    body: S.WithdrawIn,
    p: Annotated[Principal, Depends(require(Role.CLIENT, Role.OPERATOR, Role.SUPERVISOR))],
    rt: CurrentRuntime,
) -> S.ConsentOut:
    """Withdrawal in one action: processing under this consent stops now."""
    with unit_of_work(rt, p, account_id, f"consent:{consent_id}") as s:
        return _consent_out(consents.withdraw(s, consent_id, channel=body.channel))


@router.get(
    "/accounts/{account_id}/callers/{caller_id}/consents",
    response_model=list[S.ConsentOut],
    responses=ERRORS,
    tags=["consents"],
)
def caller_consents(
    account_id: uuid.UUID,
    caller_id: uuid.UUID,
    p: Annotated[Principal, Depends(require(*READING))],
    rt: CurrentRuntime,
) -> list[S.ConsentOut]:
    from permanence.subjects import service as subjects

    with unit_of_work(rt, p, account_id, f"caller:{caller_id}", readonly=True) as s:
        subjects.get(s, caller_id)
        return [_consent_out(c) for c in consents.of_caller(s, caller_id)]


# -- messages ------------------------------------------------------------------------------


@router.get(
    "/accounts/{account_id}/messages",
    response_model=list[S.MessageOut],
    responses=ERRORS,
    tags=["messages"],
)
def list_messages(
    account_id: uuid.UUID,
    p: MessageReader,
    rt: CurrentRuntime,
    status: Annotated[str | None, Query(pattern="^(new|acknowledged)$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[S.MessageOut]:
    """Messages, newest first, without their content (open one to read it)."""
    with unit_of_work(rt, p, account_id, "api:messages", readonly=True) as s:
        return [
            _message_out(m)
            for m in messages.list_messages(s, status=status, limit=limit, offset=offset)
        ]


@router.get(
    "/accounts/{account_id}/messages/{message_id}",
    response_model=S.MessageOut,
    responses=ERRORS,
    tags=["messages"],
)
def read_message(
    account_id: uuid.UUID, message_id: uuid.UUID, p: MessageReader, rt: CurrentRuntime
) -> S.MessageOut:
    """A message with its fields: an audited read of personal data."""
    with unit_of_work(rt, p, account_id, f"message:{message_id}") as s:
        msg = messages.get_message(s, message_id)
        return _message_out(msg, messages.read_message(s, rt.keyring, msg))


@router.post(
    "/accounts/{account_id}/messages/{message_id}/acknowledge",
    response_model=S.MessageOut,
    responses=ERRORS,
    tags=["messages"],
)
def acknowledge(
    account_id: uuid.UUID, message_id: uuid.UUID, p: MessageWriter, rt: CurrentRuntime
) -> S.MessageOut:
    with unit_of_work(rt, p, account_id, f"message:{message_id}") as s:
        return _message_out(messages.acknowledge(s, message_id))


@router.get(
    "/accounts/{account_id}/messages/{message_id}/deliveries",
    response_model=list[S.DeliveryOut],
    responses=ERRORS,
    tags=["messages"],
)
def message_deliveries(
    account_id: uuid.UUID, message_id: uuid.UUID, p: MessageReader, rt: CurrentRuntime
) -> list[S.DeliveryOut]:
    """The delivery ledger of a message: each channel's sent, delivered, viewed, acknowledged."""
    from permanence.delivery import service as delivery

    with unit_of_work(rt, p, account_id, f"message:{message_id}", readonly=True) as s:
        return [
            S.DeliveryOut(
                id=e.delivery_id,
                event=e.event,
                channel=e.channel,
                escalation_step=e.escalation_step,
                status=e.status,
                attempts=e.attempts,
                last_error=e.last_error,
                created_at=e.created_at,
                sent_at=e.sent_at,
                delivered_at=e.delivered_at,
                viewed_at=e.viewed_at,
                acknowledged_at=e.acknowledged_at,
                failed_at=e.failed_at,
            )
            for e in delivery.ledger(s, message_id)
        ]


@router.get(
    "/accounts/{account_id}/messages/{message_id}/recipients",
    response_model=list[S.RecipientOut],
    responses=ERRORS,
    tags=["messages"],
)
def message_recipients(
    account_id: uuid.UUID, message_id: uuid.UUID, p: MessageReader, rt: CurrentRuntime
) -> list[S.RecipientOut]:
    """Who received the message (Art. 19: the recipients a data subject may ask for)."""
    from permanence.delivery import service as delivery

    with unit_of_work(rt, p, account_id, f"message:{message_id}", readonly=True) as s:
        return [
            S.RecipientOut(
                channel=r.channel,
                description=r.description,
                first_received_at=r.first_received_at,
            )
            for r in delivery.recipients_of(s, message_id)
        ]


# -- agenda --------------------------------------------------------------------------------


@router.get(
    "/accounts/{account_id}/appointments",
    response_model=list[S.AppointmentOut],
    responses=ERRORS,
    tags=["agenda"],
)
def list_appointments(
    account_id: uuid.UUID,
    p: AgendaReader,
    rt: CurrentRuntime,
    start: dt.datetime,
    end: dt.datetime,
) -> list[S.AppointmentOut]:
    with unit_of_work(rt, p, account_id, "api:agenda", readonly=True) as s:
        return [
            _appointment_out(a)
            for a in agenda.between(s, _aware(start, "start"), _aware(end, "end"))
        ]


@router.get(
    "/accounts/{account_id}/appointments/{appointment_id}",
    response_model=S.AppointmentOut,
    responses=ERRORS,
    tags=["agenda"],
)
def read_appointment(
    account_id: uuid.UUID, appointment_id: uuid.UUID, p: AgendaReader, rt: CurrentRuntime
) -> S.AppointmentOut:
    with unit_of_work(rt, p, account_id, f"appointment:{appointment_id}") as s:
        appt = agenda.get(s, appointment_id)
        return _appointment_out(appt, agenda.read(s, rt.keyring, appt))


@router.post(
    "/accounts/{account_id}/appointments/{appointment_id}/move",
    response_model=S.AppointmentOut,
    responses=ERRORS,
    tags=["agenda"],
)
def move_appointment(
    account_id: uuid.UUID,
    appointment_id: uuid.UUID,
    body: S.MoveIn,
    p: AgendaWriter,
    rt: CurrentRuntime,
) -> S.AppointmentOut:
    with unit_of_work(rt, p, account_id, f"appointment:{appointment_id}") as s:
        return _appointment_out(
            agenda.move(
                s,
                appointment_id,
                _aware(body.starts_at, "starts_at"),
                _aware(body.ends_at, "ends_at"),
            )
        )


@router.post(
    "/accounts/{account_id}/appointments/{appointment_id}/cancel",
    response_model=S.AppointmentOut,
    responses=ERRORS,
    tags=["agenda"],
)
def cancel_appointment(
    account_id: uuid.UUID, appointment_id: uuid.UUID, p: AgendaWriter, rt: CurrentRuntime
) -> S.AppointmentOut:
    with unit_of_work(rt, p, account_id, f"appointment:{appointment_id}") as s:
        return _appointment_out(agenda.cancel(s, appointment_id))


@router.get(
    "/accounts/{account_id}/availability",
    response_model=list[S.SlotOut],
    responses=ERRORS,
    tags=["agenda"],
)
def availability(
    account_id: uuid.UUID, day: dt.date, p: AgendaReader, rt: CurrentRuntime
) -> list[S.SlotOut]:
    """Free slots of a day, from the mandate's opening hours."""
    with unit_of_work(rt, p, account_id, "api:availability", readonly=True) as s:
        return [S.SlotOut(starts_at=a, ends_at=b) for a, b in agenda.free_slots(s, day)]


@router.get(
    "/accounts/{account_id}/calendar.ics",
    responses=ERRORS,
    tags=["agenda"],
    response_class=Response,
)
def calendar(account_id: uuid.UUID, p: CalendarReader, rt: CurrentRuntime) -> Response:
    """iCalendar feed (authenticate with an API key holding calendar:read): times and who,
    never why."""
    now = dt.datetime.now(dt.UTC)
    with unit_of_work(rt, p, account_id, "api:calendar") as s:
        body = agenda.ical_feed(
            s, rt.keyring, now - dt.timedelta(days=30), now + dt.timedelta(days=180)
        )
    return Response(body, media_type="text/calendar; charset=utf-8")


# -- API keys ------------------------------------------------------------------------------


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


# -- recordings ----------------------------------------------------------------------------

Listener = Annotated[Principal, Depends(require(Role.CLIENT, Role.SUPERVISOR, Role.DPO))]


@router.get(
    "/accounts/{account_id}/recordings/{recording_id}/audio",
    responses={**ERRORS, 200: {"content": {"audio/wav": {}, "audio/mpeg": {}}}},
    response_class=StreamingResponse,
    tags=["recordings"],
)
def listen(
    account_id: uuid.UUID, recording_id: uuid.UUID, p: Listener, rt: CurrentRuntime
) -> StreamingResponse:
    """Listen to a recording: authorised, audited, decrypted as it streams."""
    from permanence.recordings import service as recordings
    from permanence.recordings.storage import store_from_settings

    with unit_of_work(rt, p, account_id, f"recording:{recording_id}") as s:
        playback = recordings.open_playback(
            s, rt.keyring, store_from_settings(rt.settings), recording_id
        )
    return StreamingResponse(
        playback.chunks,
        media_type=playback.content_type,
        headers={"Content-Length": str(playback.size_bytes), "Cache-Control": "no-store"},
    )


@router.post(
    "/accounts/{account_id}/calls/{call_id}/recording/stop",
    status_code=204,
    responses=ERRORS,
    tags=["calls"],
)
def stop_recording(
    account_id: uuid.UUID, call_id: uuid.UUID, p: Operator, rt: CurrentRuntime
) -> None:
    """The operator's stop button: nothing more is kept of this call's recording."""
    from permanence.telephony import service as telephony
    from permanence.telephony.api import telephony_api

    ctx = account_context(p, account_id, f"call:{call_id}")
    with unit_of_work(rt, p, account_id, f"call:{call_id}", readonly=True) as s:
        calls.get_call(s, call_id)
    telephony.stop_recording(rt, lambda: telephony_api(rt), ctx, call_id)


# -- data-subject rights (routes in permanence.rights.api) ---------------------------------

from permanence.rights.api import router as _rights_router  # noqa: E402

# Added route by route (not include_router) so that router.routes lists every route: the
# isolation matrix walks it.
router.routes.extend(_rights_router.routes)
