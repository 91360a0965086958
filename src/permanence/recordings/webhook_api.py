"""The provider's recording callback (``/telephony/{provider}/recording``): signed and read
like the other voice webhooks (``telephony.api.verified_hook``), it queues the recording's
download. Moved from ``telephony/api.py`` (ADR 0037) and included right after its router, so
the routes keep their order; kept out of the API schema, as the voice webhooks are.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.concurrency import run_in_threadpool

from permanence.recordings import provider_hooks
from permanence.recordings.downloads import run_in_background
from permanence.telephony import webhook
from permanence.telephony.api import Hook, runtime_of, telephony_api

router = APIRouter(prefix="/telephony", include_in_schema=False)


@router.post("/{provider}/recording", status_code=204)
async def recording(request: Request, hook: Hook, background: BackgroundTasks) -> Response:
    """Queue the download and answer at once; the download is tried right after the answer
    and then by the worker, with retries (``recordings.downloads``)."""
    rt = runtime_of(request)
    # A malformed callback is the sender's fault (422). The provider's API is built in the
    # background task: without its credentials the job waits for the worker, which records
    # the failure (``no_provider_api``) and the compliance check reports the recording.
    hook.sid("RecordingSid")

    def run() -> uuid.UUID | None:
        with rt.db.session(webhook.webhook_context(hook.provider)) as s:
            return provider_hooks.queue_recording(s, rt.settings, hook)

    job = await run_in_threadpool(run)
    if job is not None:
        account = hook.query_uuid("a")
        provider = hook.provider
        background.add_task(
            run_in_background, rt, lambda: telephony_api(rt, provider), account, job
        )
    return Response(status_code=204)
