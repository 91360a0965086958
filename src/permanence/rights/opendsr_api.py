"""The OpenDSR API (/opendsr/…): the controller's systems send and follow requests; status
callbacks run as background tasks after the commit."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from fastapi import APIRouter, BackgroundTasks, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from permanence.accounts.model import Account
from permanence.context import AccessContext
from permanence.db import utcnow
from permanence.delivery.ports import WebhookSender
from permanence.errors import PermanenceError, PermissionDenied
from permanence.rights import downloads, opendsr
from permanence.rights import service as rights
from permanence.rights.api import ControllerSystem, _callback_sender, _callbacks, _outbox, log
from permanence.rights.model import Kind, Source
from permanence.rights.schemas import ChangesIn, _changes, _In, _link
from permanence.runtime import Runtime
from permanence.web.deps import CurrentRuntime, Principal

opendsr_router = APIRouter(prefix="/opendsr", tags=["opendsr"])


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
        row = downloads.controller_link(s, rt.keyring, req, utcnow())
        token = downloads.controller_token(rt.keyring, account_id, req.id) if row else None
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
