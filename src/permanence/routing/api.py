"""The queue's webhooks (signed by the provider, like ``/telephony``) and the devices API.

Webhooks under ``/routing/{provider}/``: ``wait`` (the caller's waiting music), ``left`` (the
``<Enqueue>`` action), ``operator`` (the operator's leg answered: whisper, then the queue),
``connect`` (the ``<Queue url>``: the caller taken off the queue), ``offer-status`` (the
operator's leg's status callback), ``recording`` (a recorded conversation, handed to the
recordings pipeline under the caller's call), ``callback-key`` (the caller asked to be
called back instead of waiting), and a call-back's ``callback`` (the operator answered:
dial the person), ``callback-done`` (its ``<Dial>`` action) and ``callback-status``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import Field
from sqlalchemy.orm import Session

from permanence.context import Role
from permanence.errors import ConfigurationError, NotFound
from permanence.recordings import provider_hooks
from permanence.routing import callbacks, devices, dispatch, queue, transfers
from permanence.routing.model import QueueEntry
from permanence.runtime import Runtime
from permanence.telephony import webhook
from permanence.telephony.api import telephony_api, verified_hook
from permanence.telephony.ports import ProviderFailed
from permanence.web.deps import CurrentRuntime, Principal, require
from permanence.web.routes import ApiRoute
from permanence.web.schemas import ERRORS, Body

log = logging.getLogger("permanence.routing")
router = APIRouter(prefix="/routing", include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", route_class=ApiRoute)

Hook = Annotated[webhook.Webhook, Depends(verified_hook)]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
T = TypeVar("T")


def _rt(request: Request) -> Runtime:
    rt: Runtime = request.app.state.rt
    return rt


def _xml(text: str) -> Response:
    return Response(content=text, media_type="application/xml")


def _dispatch_later(background: BackgroundTasks, rt: Runtime) -> None:
    """Offer what can be offered, after the reply (the provider is not kept waiting)."""
    background.add_task(dispatch.dispatch, rt, dispatch.rest_api(rt))


def _context(provider: str) -> Any:
    return webhook.webhook_context(provider)


async def _in_session(rt: Runtime, hook: webhook.Webhook, step: Callable[[Session], T]) -> T:
    """One webhook's work in one session under the provider's context, off the event loop."""

    def run() -> T:
        with rt.db.session(_context(hook.provider)) as s:
            return step(s)

    return await run_in_threadpool(run)


@router.post("/{provider}/wait")
async def wait(request: Request, hook: Hook, background: BackgroundTasks) -> Response:
    rt = _rt(request)
    reply = await _in_session(rt, hook, lambda s: queue.wait(s, rt.settings, hook))
    _dispatch_later(background, rt)
    return _xml(reply)


@router.post("/{provider}/left")
async def left(request: Request, hook: Hook, background: BackgroundTasks) -> Response:
    rt = _rt(request)

    cancel: list[str] = []

    def step(s: Session) -> str:
        reply = queue.left(s, rt.settings, hook)
        if "cancel_offer" in s.info:
            cancel.append(s.info.pop("cancel_offer"))
        return reply

    reply = await _in_session(rt, hook, step)
    for sid in cancel:
        background.add_task(_cancel_offer, rt, sid)
    _dispatch_later(background, rt)  # an operator may be free again
    return _xml(reply)


def _cancel_offer(rt: Runtime, sid: str) -> None:
    """Best effort: an offer left ringing ends by itself after the ring time anyway."""
    import httpx

    try:
        dispatch.rest_api(rt)().cancel_call(sid)
    except (ProviderFailed, ConfigurationError, httpx.HTTPError) as exc:
        log.warning("routing: a ringing offer could not be cancelled (%s)", type(exc).__name__)


@router.post("/{provider}/operator")
async def operator(request: Request, hook: Hook) -> Response:
    rt = _rt(request)
    return _xml(await _in_session(rt, hook, lambda s: queue.operator(s, rt.settings, hook)))


@router.post("/{provider}/connect")
async def connect(request: Request, hook: Hook) -> Response:
    rt = _rt(request)
    return _xml(await _in_session(rt, hook, lambda s: queue.connect(s, hook)))


@router.post("/{provider}/transfer")
async def transfer(request: Request, hook: Hook) -> Response:
    """The caller's leg redirected by a cold transfer: dial the mandate's contact."""
    rt = _rt(request)
    return _xml(await _in_session(rt, hook, lambda s: transfers.transfer_twiml(s, hook)))


@router.post("/{provider}/warm-{step}")
async def warm(request: Request, step: str, hook: Hook) -> Response:
    """The legs of a warm transfer (routing.transfers): ``consult``, ``contact``, ``join``,
    ``back``, ``done``; ``contact-status`` is the contact's leg's status callback."""
    rt = _rt(request)
    if step == "contact-status":
        await _in_session(rt, hook, lambda s: transfers.warm_contact_status(s, hook))
        return Response(status_code=204)
    if step not in ("consult", "contact", "join", "back", "done"):
        raise NotFound("no such step")
    return _xml(
        await _in_session(rt, hook, lambda s: transfers.warm_twiml(s, rt.settings, hook, step))
    )


@router.post("/{provider}/offer-status", status_code=204)
async def offer_status(request: Request, hook: Hook, background: BackgroundTasks) -> Response:
    rt = _rt(request)
    if await _in_session(rt, hook, lambda s: queue.offer_status(s, hook)):
        _dispatch_later(background, rt)
    return Response(status_code=204)


@router.post("/{provider}/recording", status_code=204)
async def recording(request: Request, hook: Hook, background: BackgroundTasks) -> Response:
    """The operator's leg recorded the conversation: the recording belongs to the caller's
    call (the callback names the operator's leg, which must be the one on that call)."""
    rt = _rt(request)
    hook.sid("RecordingSid")

    def step(s: Session) -> uuid.UUID | None:
        entry = s.get(QueueEntry, hook.query_uuid("c"))
        if entry is None or entry.offer_sid != hook.sid("CallSid"):
            raise NotFound("no such call")
        as_caller = webhook.Webhook(
            provider=hook.provider,
            form={**hook.form, "CallSid": entry.caller_sid},
            query={**hook.query, "k": "call"},
        )
        return provider_hooks.queue_recording(s, rt.settings, as_caller)

    job = await _in_session(rt, hook, step)
    if job is not None:
        from permanence.recordings.downloads import run_in_background

        provider = hook.provider
        background.add_task(
            run_in_background, rt, lambda: telephony_api(rt, provider), hook.query_uuid("a"), job
        )
    return Response(status_code=204)


# -- call-backs (routing.callbacks) ------------------------------------------------------------


@router.post("/{provider}/callback")
async def callback(request: Request, hook: Hook) -> Response:
    """The operator answered the call-back placed to their device: whisper, then the person."""
    rt = _rt(request)
    return _xml(
        await _in_session(
            rt, hook, lambda s: callbacks.operator_twiml(s, rt.settings, rt.keyring, hook)
        )
    )


@router.post("/{provider}/callback-done")
async def callback_done(request: Request, hook: Hook) -> Response:
    """The call-back's ``<Dial>`` action: the person answered (talk time), or not."""
    rt = _rt(request)
    return _xml(await _in_session(rt, hook, lambda s: callbacks.done(s, hook)))


@router.post("/{provider}/callback-status", status_code=204)
async def callback_status(request: Request, hook: Hook, background: BackgroundTasks) -> Response:
    """The call-back's operator leg: its final status; the operator's wrap-up."""
    rt = _rt(request)
    await _in_session(rt, hook, lambda s: callbacks.status(s, hook))
    _dispatch_later(background, rt)  # the operator may be available again
    return Response(status_code=204)


@router.post("/{provider}/callback-key")
async def callback_key(request: Request, hook: Hook) -> Response:
    """The ``<Gather>`` of the waiting music: the caller pressed the call-back key (or not)."""
    rt = _rt(request)
    return _xml(await _in_session(rt, hook, lambda s: queue.callback_key(s, rt.settings, hook)))


# -- devices (administrators) ------------------------------------------------------------------


class DeviceIn(Body):
    device: str | None = Field(
        default=None,
        max_length=200,
        description="client:IDENTITY, sip:user@host or an E.164 number; empty or null removes it",
    )


@api_router.get("/routing/devices", responses=ERRORS, tags=["routing"])
def list_devices(p: Admin, rt: CurrentRuntime) -> list[dict[str, Any]]:
    """Every operator and supervisor, with the device the queue rings."""
    with rt.db.session(p.context("api:devices"), readonly=True) as s:
        return [
            {"user_id": str(u.id), "name": u.display_name, "role": u.role.value, "device": d}
            for u, d in devices.lines(s)
        ]


@api_router.put("/routing/devices/{user_id}", responses=ERRORS, tags=["routing"])
def put_device(user_id: uuid.UUID, body: DeviceIn, p: Admin, rt: CurrentRuntime) -> dict[str, Any]:
    with rt.db.session(p.context("api:devices")) as s:
        line = devices.set_device(s, user_id, body.device)
        return {"user_id": str(user_id), "device": line.device if line else None}
