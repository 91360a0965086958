"""The OpenDSR API (/opendsr/…): the controller's systems send and follow requests; status
callbacks go through the delivery ledger, tried at once after the commit (background task),
then by the delivery worker. Paths: the specification's under ``/opendsr/v1/`` and, as
aliases, the OpenGDPR names and this API's earlier paths (``opendsr`` module)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

import pydantic
from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from permanence.accounts.model import Account
from permanence.context import AccessContext
from permanence.db import utcnow
from permanence.delivery.ports import WebhookSender
from permanence.errors import PermanenceError, PermissionDenied, ValidationFailed
from permanence.rights import callbacks, downloads, opendsr
from permanence.rights import service as rights
from permanence.rights.api import ControllerSystem, _callback_sender, _callbacks, _outbox, log
from permanence.rights.model import Kind, Source
from permanence.rights.opendsr_signing import processor
from permanence.rights.schemas import ChangesIn, _changes, _In, _link
from permanence.runtime import Runtime
from permanence.web.deps import CurrentRuntime, Principal
from permanence.web.routes import ApiRoute

opendsr_router = APIRouter(prefix="/opendsr", tags=["opendsr"], route_class=ApiRoute)

# The specification's paths (major version first, OpenDSR 3.4), then the aliases.
REQUESTS = ("/v1/opendsr_requests", "/v1/opengdpr_requests", "/requests")
STATUS = (*REQUESTS, "/v1/status")
DISCOVERY = ("/v1/discovery", "/discovery")


class IdentityIn(_In):
    identity_type: Literal["email", "controller_customer_id", "phone_number", "name"]
    identity_value: str = Field(min_length=1, max_length=320)
    identity_format: Literal["raw", "sha256", "sha1", "md5"] = "raw"


class PermanenceExtension(BaseModel):
    model_config = ConfigDict(extra="forbid")
    objection_scope: str | None = Field(default=None, max_length=64)
    changes: ChangesIn | None = None
    statement: str | None = Field(default=None, max_length=2000)


class ExtensionsIn(BaseModel):
    # Keyed by processor domain (OpenDSR 7.1.2); other processors' extensions are ignored.
    model_config = ConfigDict(extra="allow")
    permanence: PermanenceExtension | None = None


class OpenDsrIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    subject_request_id: uuid.UUID
    subject_request_type: Kind
    # Required by OpenDSR 1.0; accepted missing from clients of this API's first version.
    regulation: Literal["gdpr"] = "gdpr"
    submitted_time: pydantic.AwareDatetime
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
    """OpenDSR's error response (specification 7.5-7.6), signed; never names the subject."""

    error: OpenDsrErrorObject


OPENDSR_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenDsrError} for code in (400, 401, 403, 404, 409, 410, 413, 415, 429)
}


def signed(rt: Runtime, document: dict[str, Any], status: int = 200) -> Response:
    """A JSON answer signed with the processor certificate's key (OpenDSR 7.3, 8.3)."""
    body = opendsr.body_bytes(document)
    signer = processor(rt.settings, rt.keyring)
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers=opendsr.signature_headers(signer, rt.settings.public_base_url, body),
    )


def _system_account(p: Principal) -> uuid.UUID:
    if p.scopes is None or p.account_id is None:
        raise PermissionDenied("the OpenDSR API is for the controller's systems (API keys)")
    return p.account_id


async def _raw_body(request: Request) -> bytes:
    return await request.body()  # read once by the framework, cached


RawBody = Annotated[bytes, Depends(_raw_body)]


def _routes(method: str, paths: tuple[str, ...], suffix: str = "", **kw: Any) -> Callable[..., Any]:
    """Register one endpoint under the specification's path and its aliases (the aliases
    stay out of the OpenAPI document)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        for n, path in enumerate(paths):
            opendsr_router.add_api_route(
                path + suffix,
                fn,
                methods=[method],
                include_in_schema=n == 0,
                name=fn.__name__ if n == 0 else f"{fn.__name__}_{n}",
                responses=OPENDSR_ERRORS,
                **kw,
            )
        return fn

    return register


@_routes("GET", DISCOVERY)
def discovery(rt: CurrentRuntime) -> Response:
    """What this processor supports, and where its certificate is (``processor_certificate``:
    its key signs every response and callback)."""
    signer = processor(rt.settings, rt.keyring)
    return signed(rt, opendsr.discovery(signer, rt.settings.public_base_url))


@opendsr_router.get(
    "/v1/processor_certificate.pem",
    response_class=Response,
    responses={
        200: {
            "description": "The certificate, PEM",
            "content": {"application/x-pem-file": {"schema": {"type": "string"}}},
        },
        **OPENDSR_ERRORS,
    },
)
def processor_certificate(rt: CurrentRuntime) -> Response:
    """The X.509 certificate (PEM) whose key signs the OpenDSR responses and callbacks."""
    return Response(
        processor(rt.settings, rt.keyring).pem,
        media_type="application/x-pem-file",
        headers={"Cache-Control": "public, max-age=3600"},
    )


def _requester(body: OpenDsrIn) -> dict[str, str]:
    given: dict[str, str] = {}
    for n, ident in enumerate(body.subject_identities):
        field = opendsr.IDENTITIES.get((ident.identity_type, ident.identity_format))
        if field is None:
            raise ValidationFailed(
                "the request is not valid",
                [
                    f"subject_identities.{n}: {ident.identity_type} in format "
                    f"{ident.identity_format} is not supported (see /discovery)"
                ],
            )
        given.setdefault(field, ident.identity_value)
    return given


def _extension(body: OpenDsrIn, host: str) -> PermanenceExtension | None:
    """Our parameters: under ``extensions.<our domain>`` (OpenDSR 7.1.2) or ``permanence``."""
    if body.extensions is None:
        return None
    mine = (body.extensions.model_extra or {}).get(host)
    if mine is None:
        return body.extensions.permanence
    try:
        return PermanenceExtension.model_validate(mine)
    except pydantic.ValidationError as exc:
        problems = [
            f"extensions.{host}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors()
        ]
        raise ValidationFailed("the request is not valid", problems) from None


@_routes("POST", REQUESTS, status_code=201)
def opendsr_submit(
    body: OpenDsrIn,
    raw: RawBody,
    p: ControllerSystem,
    request: Request,
    rt: CurrentRuntime,
    tasks: BackgroundTasks,
) -> Response:
    """A request from the controller's system, which has verified the subject: processed at
    once (in the background); the receipt is signed and carries the request as sent."""
    account_id = _system_account(p)
    ext = _extension(body, opendsr.domain(rt.settings.public_base_url))
    given = _requester(body)
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
                changes=_changes(ext.changes) if ext and ext.changes else None,
                statement=ext.statement if ext else None,
                verified_by_controller=True,
                external_id=str(body.subject_request_id),
                callback_urls=tuple(body.status_callback_urls),
                submitted_at=body.submitted_time,
            ),
        )
        account = s.get(Account, account_id)
        assert account is not None
        doc = {
            "controller_id": account.slug,
            "expected_completion_time": req.due_at.isoformat(),
            "received_time": req.received_at.isoformat(),
            # OpenDSR 7.3: the base64 of the entire body as received.
            "encoded_request": base64.b64encode(raw).decode(),
            "subject_request_id": str(body.subject_request_id),
            "api_version": opendsr.API_VERSION,
        }
        request_id = req.id
    tasks.add_task(_process, rt, _outbox(request, rt), _callback_sender(request), ctx, request_id)
    return signed(rt, doc, 201)


def _process(
    rt: Runtime,
    outbox: rights.Outbox,
    sender: WebhookSender,
    ctx: AccessContext,
    request_id: uuid.UUID,
) -> None:
    """Carry out an OpenDSR request, then tell the controller's system (the ledger rows were
    written with the change of status). A request that cannot be carried out automatically
    (e.g. an ambiguous subject) stays open for the client."""
    assert ctx.account_id is not None
    try:
        rights.run_execute(rt, outbox, ctx, request_id)
    except PermanenceError as exc:
        log.info("OpenDSR request left for the client: %s", exc.code)
    callbacks.attempt_now(rt, sender, ctx.account_id, request_id)


@_routes("GET", STATUS, "/{subject_request_id}")
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
    return signed(rt, doc)


@_routes("DELETE", REQUESTS, "/{subject_request_id}", status_code=202)
def opendsr_cancel(
    subject_request_id: uuid.UUID,
    p: ControllerSystem,
    request: Request,
    rt: CurrentRuntime,
    tasks: BackgroundTasks,
) -> Response:
    """Cancel while the request is not done (OpenDSR 9): 202 with the cancellation's time."""
    account_id = _system_account(p)
    with rt.db.session(p.context("rights:opendsr", account_id)) as s:
        req = rights.by_external_id(s, str(subject_request_id))
        rights.cancel(s, req.id)
        account = s.get(Account, account_id)
        assert account is not None
        doc = {
            "controller_id": account.slug,
            "subject_request_id": str(subject_request_id),
            "received_time": (req.cancelled_at or utcnow()).isoformat(),
            "request_status": opendsr.status(req),
            "api_version": opendsr.API_VERSION,
        }
        request_id = req.id
    _callbacks(tasks, request, rt, account_id, request_id, "callback")
    return signed(rt, doc, 202)
