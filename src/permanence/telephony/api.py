"""Voice webhooks (Twilio TwiML; SignalWire cXML and Telnyx TeXML speak the same).

Authenticated by the provider's signature only: an unsigned or wrongly signed request gets
403 before anything is read or written. The signed URL is rebuilt from
``PERMANENCE_PUBLIC_BASE_URL``, not from the request's Host.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from permanence.errors import (
    PayloadTooLarge,
    PermissionDenied,
    UnsupportedMediaType,
    ValidationFailed,
)
from permanence.runtime import Runtime
from permanence.telephony import service, webhook
from permanence.telephony.ports import TelephonyApi, provider_api
from permanence.telephony.signatures import telnyx_valid, twilio_valid

MAX_BODY = 16 * 1024  # a voice webhook is a few hundred bytes (the global limit is larger)
router = APIRouter(prefix="/telephony", include_in_schema=False)


def runtime_of(request: Request) -> Runtime:
    rt: Runtime = request.app.state.rt
    return rt


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise PayloadTooLarge(f"webhook bodies are limited to {MAX_BODY} bytes")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_BODY:
            raise PayloadTooLarge(f"webhook bodies are limited to {MAX_BODY} bytes")
    return bytes(body)


def _parse_form(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise ValidationFailed(
            "the body is not a valid form (application/x-www-form-urlencoded)"
        ) from None


async def verified_hook(request: Request, provider: str) -> webhook.Webhook:
    """Read, size-check, verify the signature, then parse: in that order."""
    if provider not in webhook.PROVIDERS:
        raise PermissionDenied("unknown provider")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("webhooks must be application/x-www-form-urlencoded")
    body = await _read_body(request)
    settings = runtime_of(request).settings
    path = request.url.path
    query = request.url.query
    url = settings.public_base_url.rstrip("/") + path + (f"?{query}" if query else "")
    if provider == "twilio":
        try:
            pairs = _parse_form(body)
        except ValidationFailed:
            pairs = None
        ok = pairs is not None and twilio_valid(
            url, pairs, request.headers.get("x-twilio-signature"), settings.twilio_auth_token
        )
    else:
        ok = telnyx_valid(
            body,
            request.headers.get("telnyx-signature-ed25519"),
            request.headers.get("telnyx-timestamp"),
            settings.telnyx_public_key,
        )
    if not ok:
        raise PermissionDenied("the webhook signature is missing or wrong")
    form = dict(_parse_form(body))
    return webhook.Webhook(provider=provider, form=form, query=dict(request.query_params))


Hook = Annotated[webhook.Webhook, Depends(verified_hook)]


def _xml(text: str) -> Response:
    return Response(content=text, media_type="application/xml")


def telephony_api(rt: Runtime, provider: str) -> TelephonyApi:
    """The REST API of the provider a webhook or a call came through."""
    return provider_api(rt.settings, provider)


@router.post("/{provider}/incoming")
async def incoming(request: Request, hook: Hook) -> Response:
    rt = runtime_of(request)

    def run() -> str:
        with rt.db.session(webhook.webhook_context(hook.provider)) as s:
            return service.incoming(s, rt.keyring, rt.settings, hook)

    return _xml(await run_in_threadpool(run))


@router.post("/{provider}/gather")
async def gather(request: Request, hook: Hook) -> Response:
    rt = runtime_of(request)

    def run() -> str:
        with rt.db.session(webhook.webhook_context(hook.provider)) as s:
            return service.gather(s, rt.settings, hook)

    return _xml(await run_in_threadpool(run))


@router.post("/{provider}/dial-done")
async def dial_done(request: Request, hook: Hook) -> Response:
    rt = runtime_of(request)

    def run() -> str:
        with rt.db.session(webhook.webhook_context(hook.provider)) as s:
            return service.dial_done(s, rt.settings, hook)

    return _xml(await run_in_threadpool(run))


@router.post("/{provider}/status", status_code=204)
async def status(request: Request, hook: Hook) -> Response:
    rt = runtime_of(request)

    def run() -> None:
        with rt.db.session(webhook.webhook_context(hook.provider)) as s:
            service.status(s, rt.keyring, hook)

    await run_in_threadpool(run)
    return Response(status_code=204)
