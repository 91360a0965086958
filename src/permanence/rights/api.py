"""Routes for data-subject rights: the client's and staff's desk under
/api/v1/accounts/{account_id}/rights/…, the expiring download link, and the OpenDSR API.

Each route parses, runs one unit of work through the rights services, renders. Outside
effects that must follow the commit (deleting freed files, OpenDSR status callbacks) run after
it, the callbacks as background tasks.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from permanence.accounts.model import Account
from permanence.context import AccessContext, Role
from permanence.crypto.stream import decrypt_stream
from permanence.db import utcnow
from permanence.delivery.ports import HttpWebhookSender, WebhookSender
from permanence.errors import NotAuthenticated, NotFound, PermanenceError, PermissionDenied
from permanence.rights import clock, opendsr, package
from permanence.rights import service as rights
from permanence.rights.model import OPEN_STATES, Kind, RightsRequest, Source
from permanence.runtime import Runtime
from permanence.web.deps import CurrentRuntime, Principal, require, unit_of_work
from permanence.web.schemas import Problem

log = logging.getLogger("permanence.rights")

# Its routes are added to permanence.web.api.router (one list of /api/v1 routes).
router = APIRouter(prefix="/api/v1")
opendsr_router = APIRouter(prefix="/opendsr", tags=["opendsr"])

SCOPE = "rights:manage"
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 401, 403, 404, 409, 410, 413, 415, 422, 429)
}
Desk = Annotated[
    Principal,
    Depends(require(Role.CLIENT, Role.OPERATOR, Role.SUPERVISOR, Role.DPO, scope=SCOPE)),
]
Controller = Annotated[Principal, Depends(require(Role.CLIENT, scope=SCOPE))]
Executor = Annotated[Principal, Depends(require(Role.CLIENT, Role.DPO, scope=SCOPE))]
ControllerSystem = Annotated[Principal, Depends(require(Role.CLIENT, scope=SCOPE))]


def _outbox(request: Request, rt: Runtime) -> rights.Outbox:
    box = getattr(request.app.state, "rights_outbox", None)
    return box if isinstance(box, rights.Outbox) else rights.Outbox.from_settings(rt.settings)


def _callback_sender(request: Request) -> WebhookSender:
    sender = getattr(request.app.state, "opendsr_callback_sender", None)
    return sender if sender is not None else HttpWebhookSender()


# -- schemas --------------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequesterIn(_In):
    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, max_length=200)


class RecordChangeIn(_In):
    kind: Literal["message", "appointment"]
    id: uuid.UUID
    fields: dict[str, Any]


class IdentityChangeIn(_In):
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)


class ChangesIn(_In):
    identity: IdentityChangeIn | None = None
    records: list[RecordChangeIn] = Field(default_factory=list, max_length=100)


def _changes(c: ChangesIn | None) -> dict[str, Any] | None:
    if c is None:
        return None
    out: dict[str, Any] = {}
    if c.identity is not None:
        out["identity"] = c.identity.model_dump(exclude_unset=True)
    if c.records:
        out["records"] = [r.model_dump(mode="json") for r in c.records]
    return out or None


class RightsRequestIn(_In):
    kind: Kind
    requester: RequesterIn = Field(default_factory=RequesterIn)
    caller_id: uuid.UUID | None = None
    scope: str | None = Field(default=None, max_length=64)
    changes: ChangesIn | None = None
    statement: str | None = Field(default=None, max_length=2000)
    verified_by_controller: bool = False


class RightsRequestOut(BaseModel):
    id: uuid.UUID
    kind: str
    source: str
    state: str
    received_at: dt.datetime
    first_due_at: dt.datetime
    due_at: dt.datetime
    due_date: dt.date
    days_left: int
    overdue: bool
    extended: bool
    extension_reason: str | None
    waiting_reason: str | None
    verified: bool
    verification_method: str | None
    possibly_excessive: bool
    subject_linked: bool
    match_count: int
    scope: str | None
    refusal_reason: str | None
    completed_at: dt.datetime | None
    restriction_lifted_at: dt.datetime | None
    outcome: dict[str, Any] | None
    records: dict[str, int] | None = None


class LetterOut(BaseModel):
    request: RightsRequestOut
    letter_fr: str
    channel: str


class ExecutedOut(LetterOut):
    download_url: str | None = None
    download_expires_at: dt.datetime | None = None
    certificate: dict[str, Any] | None = None


class VerificationIn(_In):
    method: Literal["email_code", "sms_code", "callback", "id_seen"]


class VerifyIn(_In):
    code: str | None = Field(default=None, max_length=12)
    callback_confirmed: bool = False


class ExtendIn(_In):
    reason: str = Field(max_length=32)


class WaitIn(_In):
    reason: str = Field(max_length=32)


class RefuseIn(_In):
    reason: str = Field(max_length=32)
    explanation: str = Field(max_length=2000)
    cnil_complaint_informed: bool
    judicial_remedy_informed: bool
    justification: str | None = Field(default=None, max_length=2000)


class RecipientOut(BaseModel):
    channel: str
    description: str
    first_received_at: dt.datetime


def _out(req: RightsRequest, records: dict[str, int] | None = None) -> RightsRequestOut:
    now = dt.datetime.now(dt.UTC)
    open_ = req.state in {s.value for s in OPEN_STATES}
    return RightsRequestOut(
        id=req.id,
        kind=req.kind,
        source=req.source,
        state=req.state,
        received_at=req.received_at,
        first_due_at=req.first_due_at,
        due_at=req.due_at,
        due_date=clock.local_day(req.due_at),
        days_left=clock.days_left(req.due_at, now),
        overdue=open_ and now > req.due_at,
        extended=req.extended_at is not None,
        extension_reason=req.extension_reason,
        waiting_reason=req.waiting_reason,
        verified=req.verified_at is not None,
        verification_method=req.verification_method,
        possibly_excessive=req.possibly_excessive,
        subject_linked=req.subject_id is not None,
        match_count=req.match_count,
        scope=req.scope,
        refusal_reason=req.refusal_reason,
        completed_at=req.completed_at,
        restriction_lifted_at=req.restriction_lifted_at,
        outcome=json.loads(req.outcome) if req.outcome else None,
        records=records,
    )


def _link(outbox: rights.Outbox, token: str | None) -> str | None:
    return f"{outbox.base_url}/api/v1/rights/downloads/{token}" if token else None


# -- the desk -------------------------------------------------------------------------------

BASE = "/accounts/{account_id}/rights/requests"


@router.post(
    BASE, response_model=RightsRequestOut, status_code=201, responses=ERRORS, tags=["rights"]
)
def submit(
    account_id: uuid.UUID, body: RightsRequestIn, p: Desk, rt: CurrentRuntime
) -> RightsRequestOut:
    """Take a request in (the clock starts now). Staff take a caller's request on the phone;
    the client decides. ``verified_by_controller``: the client vouches for the requester."""
    with unit_of_work(rt, p, account_id, "rights:intake") as s:
        req = rights.submit(
            s,
            rt.keyring,
            rights.Intake(
                kind=body.kind,
                requester=rights.Requester(**body.requester.model_dump()),
                caller_id=body.caller_id,
                scope=body.scope,
                changes=_changes(body.changes),
                statement=body.statement,
                verified_by_controller=body.verified_by_controller,
            ),
        )
        return _out(req)


@router.get(BASE, response_model=list[RightsRequestOut], responses=ERRORS, tags=["rights"])
def list_requests(
    account_id: uuid.UUID,
    p: Desk,
    rt: CurrentRuntime,
    open_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[RightsRequestOut]:
    """Overdue and soonest due first, each with its countdown."""
    with unit_of_work(rt, p, account_id, "rights:list", readonly=True) as s:
        return [
            _out(r)
            for r in rights.list_requests(s, open_only=open_only, limit=limit, offset=offset)
        ]


@router.get(
    BASE + "/{request_id}", response_model=RightsRequestOut, responses=ERRORS, tags=["rights"]
)
def show(
    account_id: uuid.UUID, request_id: uuid.UUID, p: Desk, rt: CurrentRuntime
) -> RightsRequestOut:
    """The request, with how many records of each kind the subject has (counts only)."""
    with unit_of_work(rt, p, account_id, "rights:show", readonly=True) as s:
        req = rights.get(s, request_id)
        caller = rights.subject_of(s, req)
        counts = rights.records_of(s, caller).counts() if caller is not None else None
        return _out(req, counts)


@router.post(
    BASE + "/{request_id}/verification",
    response_model=RightsRequestOut,
    responses=ERRORS,
    tags=["rights"],
)
def start_verification(
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    body: VerificationIn,
    p: Desk,
    request: Request,
    rt: CurrentRuntime,
) -> RightsRequestOut:
    """Send a one-time code to the e-mail or phone on file, or plan a callback to it."""
    with unit_of_work(rt, p, account_id, "rights:verify") as s:
        req = rights.start_verification(
            s, rt.keyring, _outbox(request, rt), request_id, body.method
        )
        return _out(req)


@router.post(
    BASE + "/{request_id}/verify",
    response_model=RightsRequestOut,
    responses=ERRORS,
    tags=["rights"],
)
def verify(
    account_id: uuid.UUID, request_id: uuid.UUID, body: VerifyIn, p: Desk, rt: CurrentRuntime
) -> RightsRequestOut:
    """The code the requester received, or the confirmation of a successful callback."""
    with unit_of_work(rt, p, account_id, "rights:verify") as s:
        ok = rights.verify(
            s, rt.keyring, request_id, code=body.code, callback_confirmed=body.callback_confirmed
        )
        out = _out(rights.get(s, request_id))
    if not ok:
        raise NotAuthenticated("the code is not the one sent")
    return out


@router.post(
    BASE + "/{request_id}/information",
    response_model=RightsRequestOut,
    responses=ERRORS,
    tags=["rights"],
)
def add_information(
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    body: RequesterIn,
    p: Desk,
    rt: CurrentRuntime,
) -> RightsRequestOut:
    """More identifiers from the requester (after an ambiguous match)."""
    with unit_of_work(rt, p, account_id, "rights:information") as s:
        return _out(
            rights.add_information(s, rt.keyring, request_id, rights.Requester(**body.model_dump()))
        )


@router.post(
    BASE + "/{request_id}/extend", response_model=LetterOut, responses=ERRORS, tags=["rights"]
)
def extend(
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    body: ExtendIn,
    p: Executor,
    request: Request,
    rt: CurrentRuntime,
    tasks: BackgroundTasks,
) -> LetterOut:
    """Two further months, once, before the first due date; the reason goes to the requester."""
    with unit_of_work(rt, p, account_id, "rights:extend") as s:
        req, letter, channel = rights.extend(
            s, rt.keyring, _outbox(request, rt), request_id, body.reason
        )
        out = LetterOut(request=_out(req), letter_fr=letter, channel=channel)
    _callbacks(tasks, request, rt, account_id, request_id, channel)
    return out


@router.post(
    BASE + "/{request_id}/wait", response_model=LetterOut, responses=ERRORS, tags=["rights"]
)
def wait(
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    body: WaitIn,
    p: Executor,
    request: Request,
    rt: CurrentRuntime,
    tasks: BackgroundTasks,
) -> LetterOut:
    """Ask the requester for more information; the request waits for it."""
    with unit_of_work(rt, p, account_id, "rights:wait") as s:
        req, letter, channel = rights.wait_for_information(
            s, rt.keyring, _outbox(request, rt), request_id, body.reason
        )
        out = LetterOut(request=_out(req), letter_fr=letter, channel=channel)
    _callbacks(tasks, request, rt, account_id, request_id, channel)
    return out


@router.post(
    BASE + "/{request_id}/refuse", response_model=LetterOut, responses=ERRORS, tags=["rights"]
)
def refuse(
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    body: RefuseIn,
    p: Executor,
    request: Request,
    rt: CurrentRuntime,
    tasks: BackgroundTasks,
) -> LetterOut:
    """Refuse, with the reasons, the right to complain to the CNIL and to a judicial remedy."""
    with unit_of_work(rt, p, account_id, "rights:refuse") as s:
        req, letter, channel = rights.refuse(
            s, rt.keyring, _outbox(request, rt), request_id, rights.Refusal(**body.model_dump())
        )
        out = LetterOut(request=_out(req), letter_fr=letter, channel=channel)
    _callbacks(tasks, request, rt, account_id, request_id, channel)
    return out


@router.post(
    BASE + "/{request_id}/execute", response_model=ExecutedOut, responses=ERRORS, tags=["rights"]
)
def execute(
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    p: Executor,
    request: Request,
    rt: CurrentRuntime,
    tasks: BackgroundTasks,
) -> ExecutedOut:
    """Grant and carry out the request: the access package or portable data behind a
    single-use link, the rectification, restriction, objection, or the erasure (certificate)."""
    outbox = _outbox(request, rt)
    ctx = p.context("rights:execute", account_id)
    with unit_of_work(rt, p, account_id, "rights:execute", readonly=True):
        pass  # 404 for an account the principal may not act on
    done = rights.run_execute(rt, outbox, ctx, request_id)
    link = _link(outbox, done.controller_token)  # the client's own; the requester has theirs
    _callbacks(tasks, request, rt, account_id, request_id, done.channel, link)
    return ExecutedOut(
        request=_out(done.request),
        letter_fr=done.letter,
        channel=done.channel,
        download_url=link,
        download_expires_at=done.download_expires_at,
        certificate=done.certificate,
    )


@router.post(
    BASE + "/{request_id}/lift", response_model=LetterOut, responses=ERRORS, tags=["rights"]
)
def lift(
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    p: Controller,
    request: Request,
    rt: CurrentRuntime,
    tasks: BackgroundTasks,
) -> LetterOut:
    """Lift a restriction: the subject is told first."""
    with unit_of_work(rt, p, account_id, "rights:lift") as s:
        req, letter, channel = rights.lift_restriction(
            s, rt.keyring, _outbox(request, rt), request_id
        )
        out = LetterOut(request=_out(req), letter_fr=letter, channel=channel)
    _callbacks(tasks, request, rt, account_id, request_id, channel)
    return out


@router.post(
    BASE + "/{request_id}/cancel",
    response_model=RightsRequestOut,
    responses=ERRORS,
    tags=["rights"],
)
def cancel(
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    p: Controller,
    request: Request,
    rt: CurrentRuntime,
    tasks: BackgroundTasks,
) -> RightsRequestOut:
    with unit_of_work(rt, p, account_id, "rights:cancel") as s:
        rights.cancel(s, request_id)
        req = rights.get(s, request_id)
        out = _out(req)
        channel = "callback" if req.source == Source.OPENDSR.value else "none"
    _callbacks(tasks, request, rt, account_id, request_id, channel)
    return out


@router.get(
    BASE + "/{request_id}/recipients",
    response_model=list[RecipientOut],
    responses=ERRORS,
    tags=["rights"],
)
def recipients(
    account_id: uuid.UUID, request_id: uuid.UUID, p: Desk, rt: CurrentRuntime
) -> list[RecipientOut]:
    """Art. 19: who received the subject's data, for the subject (after verification)."""
    with unit_of_work(rt, p, account_id, "rights:recipients") as s:
        return [
            RecipientOut(
                channel=r.channel,
                description=r.description,
                first_received_at=r.first_received_at,
            )
            for r in rights.recipients(s, request_id)
        ]


@router.get(BASE + "/{request_id}/certificate", responses=ERRORS, tags=["rights"])
def certificate(
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    p: Executor,
    rt: CurrentRuntime,
    format: Literal["json", "html"] = "json",
) -> Response:
    """The signed certificate of erasure (JSON, or HTML to print)."""
    with unit_of_work(rt, p, account_id, "rights:certificate", readonly=True) as s:
        req = rights.get(s, request_id)
        if req.certificate is None:
            raise NotFound("this request has no certificate of erasure")
        cert = json.loads(req.certificate)
    if format == "html":
        return HTMLResponse(rights.certificate_html(cert))
    return Response(json.dumps(cert, ensure_ascii=False, indent=2), media_type="application/json")


# -- the download link (no sign-in: the token is the credential, once) ----------------------


@router.get("/rights/downloads/{token}", responses=ERRORS, tags=["rights"])
def download(token: str, request: Request, rt: CurrentRuntime) -> StreamingResponse:
    """The access package or portable data: single use, expiring; deleted once sent."""
    account_id = package.account_of_token(token) if len(token) < 200 else None
    if account_id is None:
        raise NotFound("no such download")
    outbox = _outbox(request, rt)
    with rt.db.session(AccessContext.system("rights:download", account_id)) as s:
        claimed = package.claim(s, rt.keyring, token)

    def chunks() -> Iterator[bytes]:
        try:
            with outbox.files.open(claimed.storage_key) as fh:
                yield from decrypt_stream(claimed.dek, claimed.ad, fh)
        finally:
            outbox.files.delete(claimed.storage_key)

    return StreamingResponse(
        chunks(),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{claimed.filename}"',
            "Cache-Control": "no-store",
        },
    )


# -- OpenDSR --------------------------------------------------------------------------------


def _callbacks(
    tasks: BackgroundTasks,
    request: Request,
    rt: Runtime,
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    channel: str,
    results_url: str | None = None,
) -> None:
    if channel == "callback":
        tasks.add_task(
            opendsr.send_callbacks,
            rt,
            _callback_sender(request),
            account_id,
            request_id,
            results_url=results_url,
        )


class IdentityIn(_In):
    identity_type: Literal["email", "phone_number", "name"]
    identity_value: str = Field(min_length=1, max_length=320)
    identity_format: Literal["raw"] = "raw"


class PermanenceExtension(BaseModel):
    model_config = ConfigDict(extra="forbid")
    objection_scope: str | None = Field(default=None, max_length=64)
    changes: ChangesIn | None = None
    statement: str | None = Field(default=None, max_length=2000)


class ExtensionsIn(BaseModel):
    model_config = ConfigDict(extra="allow")  # other processors' extensions are ignored
    permanence: PermanenceExtension | None = None


class OpenDsrIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    subject_request_id: uuid.UUID
    subject_request_type: Kind
    submitted_time: dt.datetime
    subject_identities: list[IdentityIn] = Field(min_length=1, max_length=5)
    api_version: str = Field(default=opendsr.API_VERSION, max_length=8)
    property_id: str | None = Field(default=None, max_length=64)
    status_callback_urls: list[str] = Field(default_factory=list, max_length=5)
    extensions: ExtensionsIn | None = None


class OpenDsrErrorDetail(BaseModel):
    domain: str
    reason: str
    message: str


class OpenDsrErrorObject(BaseModel):
    code: int
    message: str
    errors: list[OpenDsrErrorDetail] = Field(default_factory=list)


class OpenDsrError(BaseModel):
    """OpenDSR's error response (specification 7.5-7.6); never names the subject."""

    error: OpenDsrErrorObject


OPENDSR_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenDsrError} for code in (400, 401, 403, 404, 409, 410, 413, 415, 429)
}


def _signed(request: Request, rt: Runtime, document: dict[str, Any], status: int = 200) -> Response:
    body = opendsr.body_bytes(document)
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={
            opendsr.SIGNATURE_HEADER: opendsr.sign(rt.keyring, body),
            opendsr.DOMAIN_HEADER: opendsr.domain(rt.settings.public_base_url),
        },
    )


def _system_account(p: Principal) -> uuid.UUID:
    if p.scopes is None or p.account_id is None:
        raise PermissionDenied("the OpenDSR API is for the controller's systems (API keys)")
    return p.account_id


@opendsr_router.get("/discovery", responses=OPENDSR_ERRORS)
def discovery(request: Request, rt: CurrentRuntime) -> Response:
    """What this processor supports, and the public key that signs every receipt."""
    return _signed(request, rt, opendsr.discovery(rt.keyring, rt.settings.public_base_url))


@opendsr_router.post("/requests", status_code=201, responses=OPENDSR_ERRORS)
def opendsr_submit(
    body: OpenDsrIn,
    p: ControllerSystem,
    request: Request,
    rt: CurrentRuntime,
    tasks: BackgroundTasks,
) -> Response:
    """A request from the controller's system, which has verified the subject: processed at
    once (in the background); the receipt is signed."""
    account_id = _system_account(p)
    ext = body.extensions.permanence if body.extensions and body.extensions.permanence else None
    given: dict[str, str] = {}
    for ident in body.subject_identities:
        given.setdefault(opendsr.IDENTITY_TYPES[ident.identity_type], ident.identity_value)
    ctx = p.context("rights:opendsr", account_id)
    with rt.db.session(ctx) as s:
        req = rights.submit(
            s,
            rt.keyring,
            rights.Intake(
                kind=body.subject_request_type,
                source=Source.OPENDSR,
                requester=rights.Requester(**given),
                scope=ext.objection_scope if ext else None,
                changes=_changes(ext.changes) if ext else None,
                statement=ext.statement if ext else None,
                verified_by_controller=True,
                external_id=str(body.subject_request_id),
                callback_urls=tuple(body.status_callback_urls),
            ),
        )
        account = s.get(Account, account_id)
        assert account is not None
        doc = {
            "controller_id": account.slug,
            "expected_completion_time": req.due_at.isoformat(),
            "received_time": req.received_at.isoformat(),
            "encoded_request": _encoded(body),
            "subject_request_id": str(body.subject_request_id),
            "api_version": opendsr.API_VERSION,
        }
        request_id = req.id
    tasks.add_task(_process, rt, _outbox(request, rt), _callback_sender(request), ctx, request_id)
    return _signed(request, rt, doc, 201)


def _encoded(body: OpenDsrIn) -> str:
    import base64

    return base64.b64encode(body.model_dump_json(exclude_none=True).encode()).decode()


def _process(
    rt: Runtime,
    outbox: rights.Outbox,
    sender: WebhookSender,
    ctx: AccessContext,
    request_id: uuid.UUID,
) -> None:
    """Carry out an OpenDSR request, then tell the controller's system. A request that cannot
    be carried out automatically (e.g. an ambiguous subject) stays open for the client."""
    assert ctx.account_id is not None
    link = None
    try:
        done = rights.run_execute(rt, outbox, ctx, request_id)
        link = _link(outbox, done.controller_token)
    except PermanenceError as exc:
        log.info("OpenDSR request left for the client: %s", exc.code)
    opendsr.send_callbacks(rt, sender, ctx.account_id, request_id, results_url=link)


@opendsr_router.get("/requests/{subject_request_id}", responses=OPENDSR_ERRORS)
def opendsr_status(
    subject_request_id: uuid.UUID, p: ControllerSystem, request: Request, rt: CurrentRuntime
) -> Response:
    account_id = _system_account(p)
    with rt.db.session(p.context("rights:opendsr", account_id), readonly=True) as s:
        req = rights.by_external_id(s, str(subject_request_id))
        account = s.get(Account, account_id)
        assert account is not None
        # Access and portability results stay retrievable by polling while the client's
        # own link is unused and unexpired (the requester has a link of their own).
        row = package.controller_link(s, rt.keyring, req, utcnow())
        token = package.controller_token(rt.keyring, account_id, req.id) if row else None
        doc = opendsr.status_document(req, account, _link(_outbox(request, rt), token))
    return _signed(request, rt, doc)


@opendsr_router.delete("/requests/{subject_request_id}", responses=OPENDSR_ERRORS)
def opendsr_cancel(
    subject_request_id: uuid.UUID,
    p: ControllerSystem,
    request: Request,
    rt: CurrentRuntime,
    tasks: BackgroundTasks,
) -> Response:
    """Cancel while the request is still pending."""
    account_id = _system_account(p)
    with rt.db.session(p.context("rights:opendsr", account_id)) as s:
        req = rights.by_external_id(s, str(subject_request_id))
        rights.cancel(s, req.id)
        doc = {
            "subject_request_id": str(subject_request_id),
            "received_time": req.received_at.isoformat(),
            "request_status": opendsr.status(req),
            "api_version": opendsr.API_VERSION,
        }
        request_id = req.id
    _callbacks(tasks, request, rt, account_id, request_id, "callback")
    return _signed(request, rt, doc)
