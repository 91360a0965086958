"""The provider's recording callbacks and the operator's stop button: queue a recording's
download (``recordings.downloads`` fetches it), or note the caller's objection and stop the
recording at the provider. Moved from ``telephony.service`` (ADR 0037): recordings build on
the voice webhooks (their request, the provider's API), not the webhooks on recordings."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.calls import service as calls
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.db import ctx_of, utcnow
from permanence.errors import PermissionDenied, ValidationFailed
from permanence.recordings.model import RecordingDownload
from permanence.runtime import Runtime
from permanence.telephony.ports import TelephonyApi, recording_url_allowed
from permanence.telephony.webhook import Webhook, call_from_query


def queue_recording(session: Session, settings: Settings, hook: Webhook) -> uuid.UUID | None:
    """The provider has a recording: queue its download (``recordings.downloads``) and
    answer at once. Returns the job to try right away, or None (nothing to do now).

    A retried callback queues nothing twice; a recording of an objected call is queued for
    deletion at the provider without ever being fetched; a recording the provider did not
    make (``absent``) is only noted.
    """
    call = call_from_query(session, hook)
    kind = hook.query.get("k", "call")
    if kind not in ("call", "voicemail"):
        raise ValidationFailed("the callback URL has an unknown recording kind")
    sid = hook.sid("RecordingSid")
    existing = session.scalars(
        select(RecordingDownload).where(
            RecordingDownload.account_id == call.account_id,
            RecordingDownload.provider_sid == sid,
        )
    ).first()
    if existing is not None:
        return None
    if hook.get("RecordingStatus") not in (None, "completed"):
        audit.record(session, "recording.absent", "call", call.id, details={"kind": kind})
        return None
    state = "pending"
    if kind == "call" and call.recording_state != "recording":
        # The caller objected (keypress or the operator's stop button): the audio is
        # discarded unheard, here and at the provider.
        audit.record(
            session, "recording.discard", "call", call.id, details={"state": call.recording_state}
        )
        state = "discard"
    url = hook.require("RecordingUrl") if state == "pending" else ""
    if state == "pending" and not recording_url_allowed(settings, hook.provider, url):
        # Our credentials only ever go to the configured API (SSRF): refused before queuing.
        raise ValidationFailed("the recording URL is not on the configured provider API")
    job = RecordingDownload(
        id=uuid.uuid4(),
        account_id=call.account_id,
        call_id=call.id,
        kind=kind,
        provider_sid=sid,
        url=url,
        duration_s=hook.seconds("RecordingDuration"),
        state=state,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    session.add(job)
    session.flush()
    audit.record(session, "recording.queued", "call", call.id, details={"kind": kind})
    return job.id


def object_to_recording(session: Session, call_id: uuid.UUID) -> str | None:
    """The operator's stop button: the caller objects; returns the provider's call id if a
    recording is running there (to stop it), None if nothing was being recorded."""
    ctx = ctx_of(session)
    if ctx.role not in (Role.OPERATOR, Role.SUPERVISOR):
        raise PermissionDenied("only the operator on the call can stop its recording")
    call = calls.get_call(session, call_id)
    was = call.recording_state
    if was not in ("offered", "recording"):
        return None
    call.recording_state = "objected"
    audit.record(session, "call.recording_objected", "call", call.id, details={"by": "operator"})
    return call.provider_sid if was == "recording" else None


def stop_recording(
    rt: Runtime, api: Callable[[str], TelephonyApi], ctx: AccessContext, call_id: uuid.UUID
) -> bool:
    """Mark the objection first (so a recording that still arrives is discarded), then ask
    the provider the call came through to stop. Returns whether a running recording was
    stopped. The provider's API (``api(provider)``) is only built when there is something to
    stop."""
    with rt.db.session(ctx) as s:
        provider_sid = object_to_recording(s, call_id)
        provider = calls.get_call(s, call_id).provider or "twilio"
    if provider_sid is None:
        return False
    api(provider).stop_recording(provider_sid)
    return True
