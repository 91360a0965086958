"""Routes for data-subject rights: the client's and staff's desk under
/api/v1/accounts/{account_id}/rights/…, and the expiring download link (the OpenDSR API is in
``rights.opendsr_api``, the bodies in ``rights.schemas``).

Each route parses, runs one unit of work through the rights services, renders. Outside
effects that must follow the commit (deleting freed files) run after it.
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
from pydantic import BaseModel

from permanence.context import AccessContext, Role
from permanence.crypto.stream import decrypt_stream
from permanence.delivery.ports import HttpWebhookSender, WebhookSender
from permanence.errors import NotAuthenticated, NotFound
from permanence.rights import callbacks, downloads
from permanence.rights import service as rights
from permanence.rights.model import Source
from permanence.rights.schemas import (
    ExecutedOut,
    ExtendIn,
    LetterOut,
    RefuseIn,
    RequesterIn,
    RightsRequestIn,
    RightsRequestOut,
    SentLetterOut,
    VerificationIn,
    VerifyIn,
    WaitIn,
    _changes,
    _link,
    _out,
)
from permanence.runtime import Runtime
from permanence.web.deps import CurrentRuntime, Principal, require, unit_of_work
from permanence.web.routes import ApiRoute
from permanence.web.schemas import Problem

log = logging.getLogger("permanence.rights")

# Its routes are added to permanence.web.api.router (one list of /api/v1 routes).
router = APIRouter(prefix="/api/v1", route_class=ApiRoute)


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


# Here, not in rights.schemas: the schema's name in /openapi.json carries its module
# (web.schemas has another RecipientOut).
class RecipientOut(BaseModel):
    channel: str
    description: str
    first_received_at: dt.datetime


def _outbox(request: Request, rt: Runtime) -> rights.Outbox:
    box = getattr(request.app.state, "rights_outbox", None)
    return box if isinstance(box, rights.Outbox) else rights.Outbox.from_settings(rt.settings)


def _callback_sender(request: Request) -> WebhookSender:
    sender = getattr(request.app.state, "opendsr_callback_sender", None)
    return sender if sender is not None else HttpWebhookSender()


# -- the desk -------------------------------------------------------------------------------

BASE = "/accounts/{account_id}/rights/requests"


@router.post(
    BASE, response_model=RightsRequestOut, status_code=201, responses=ERRORS, tags=["rights"]
)
def submit(
    request: Request, account_id: uuid.UUID, body: RightsRequestIn, p: Desk, rt: CurrentRuntime
) -> RightsRequestOut:
    """Take a request in (the clock starts now). Staff take a caller's request on the phone;
    the client decides. ``verified_by_controller``: the client vouches for the requester.
    The requester is sent an acknowledgement (date received, deadline, what happens next)."""
    with unit_of_work(rt, p, account_id, "rights:intake") as s:
        requester = rights.Requester(**body.requester.model_dump())
        req = rights.submit(
            s,
            rt.keyring,
            rights.Intake(
                kind=body.kind,
                requester=requester,
                caller_id=body.caller_id,
                scope=body.scope,
                changes=_changes(body.changes),
                statement=body.statement,
                verified_by_controller=body.verified_by_controller,
            ),
        )
        rights.acknowledge(s, rt.keyring, _outbox(request, rt), req, requester.given())
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
    _callbacks(tasks, request, rt, account_id, request_id, done.channel)
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


@router.get(
    BASE + "/{request_id}/letters",
    response_model=list[SentLetterOut],
    responses=ERRORS,
    tags=["rights"],
)
def letters(
    account_id: uuid.UUID, request_id: uuid.UUID, p: Executor, rt: CurrentRuntime
) -> list[SentLetterOut]:
    """The letters sent to the requester, oldest first, each with its outcome: one whose
    status is ``to_post`` (nowhere to send it) or ``failed`` is for the client to send. The
    requester's download link is not in the copy kept."""
    with unit_of_work(rt, p, account_id, "rights:letters", readonly=True) as s:
        req = rights.get(s, request_id)
        return [
            SentLetterOut(
                kind=x.kind, channel=x.channel, status=x.status, sent_at=x.sent_at, text_fr=x.text
            )
            for x in rights.letters_of(s, rt.keyring, req)
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
    account_id = downloads.account_of_token(token) if len(token) < 200 else None
    if account_id is None:
        raise NotFound("no such download")
    outbox = _outbox(request, rt)
    with rt.db.session(AccessContext.system("rights:download", account_id)) as s:
        claimed = downloads.claim(s, rt.keyring, token)

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


def _callbacks(
    tasks: BackgroundTasks,
    request: Request,
    rt: Runtime,
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    channel: str,
) -> None:
    """An OpenDSR request's status changed: its callbacks are in the delivery ledger (written
    with the change); try them now, after the commit; the worker retries what fails."""
    if channel == "callback":
        tasks.add_task(callbacks.attempt_now, rt, _callback_sender(request), account_id, request_id)
