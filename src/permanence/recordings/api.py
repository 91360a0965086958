"""Recordings over HTTP: the voicemail inbox (issue 15: list, listen, treat, turn into a
message), listening to a call's recording and the operator's stop button.

Routes parse, open one unit of work for the account (another account's recording is a 404),
call one service, render. Listening, to a voicemail or to a call, is one helper (``played``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from permanence.calls import service as calls
from permanence.context import Role
from permanence.filestore import store_from_settings
from permanence.recordings import service as recordings
from permanence.recordings import voicemails
from permanence.runtime import Runtime
from permanence.web import schemas as S
from permanence.web.deps import (
    CurrentRuntime,
    Operator,
    Principal,
    account_context,
    require,
    unit_of_work,
)
from permanence.web.routes import ApiRoute
from permanence.web.schemas import ERRORS

router = APIRouter(prefix="/api/v1", route_class=ApiRoute)
# A call's recording: its routes are in the one list of /api/v1 routes (permanence.web.api).
recordings_router = APIRouter(prefix="/api/v1", route_class=ApiRoute)

InboxReader = Annotated[Principal, Depends(require(Role.CLIENT, Role.OPERATOR, Role.SUPERVISOR))]
VoicemailListener = Annotated[
    Principal, Depends(require(Role.CLIENT, Role.OPERATOR, Role.SUPERVISOR, Role.DPO))
]
Writer = Annotated[Principal, Depends(require(Role.OPERATOR, Role.SUPERVISOR))]
# Why staff listen: a short code kept in the audit entry (never free text: no personal data).
Reason = Annotated[
    str | None,
    Query(
        pattern=r"^[a-z][a-z0-9-]{2,39}$",
        description="why you listen (staff: required), e.g. rappel or prise-de-message",
    ),
]


def played(
    rt: Runtime,
    p: Principal,
    account_id: uuid.UUID,
    why: str,
    recording_id: uuid.UUID,
    check: Callable[[Session, uuid.UUID], object] | None = None,
) -> StreamingResponse:
    """A recording heard: in one unit of work for the account (``check`` first: the recording
    is what the route says it is), authorised and audited by ``open_playback``, then decrypted
    as it streams."""
    with unit_of_work(rt, p, account_id, why) as s:
        if check is not None:
            check(s, recording_id)
        playback = recordings.open_playback(
            s, rt.keyring, store_from_settings(rt.settings), recording_id
        )
    return StreamingResponse(
        playback.chunks,
        media_type=playback.content_type,
        headers={"Content-Length": str(playback.size_bytes), "Cache-Control": "no-store"},
    )


@router.get("/accounts/{account_id}/voicemails", responses=ERRORS, tags=["voicemails"])
def list_voicemails(
    account_id: uuid.UUID,
    p: InboxReader,
    rt: CurrentRuntime,
    state: Literal["new", "treated"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The account's voicemails, newest first, and how many are new."""
    with unit_of_work(rt, p, account_id, "api:voicemails") as s:
        items = voicemails.inbox(s, rt.keyring, state=state, limit=limit)
        new = voicemails.count_new(s)
    return {"new": new, "voicemails": [v.as_dict() for v in items]}


@router.post(
    "/accounts/{account_id}/voicemails/{voicemail_id}/treat",
    responses=ERRORS,
    tags=["voicemails"],
)
def treat_voicemail(
    account_id: uuid.UUID, voicemail_id: uuid.UUID, p: InboxReader, rt: CurrentRuntime
) -> dict[str, Any]:
    """Mark the voicemail treated (who and when kept, audited)."""
    with unit_of_work(rt, p, account_id, f"voicemail:{voicemail_id}") as s:
        rec = voicemails.treat(s, voicemail_id)
        return {
            "id": str(rec.id),
            "state": "treated",
            "treated_at": rec.treated_at.isoformat() if rec.treated_at else None,
        }


@router.get(
    "/accounts/{account_id}/voicemails/{voicemail_id}/audio",
    responses={**ERRORS, 200: {"content": {"audio/wav": {}, "audio/mpeg": {}}}},
    response_class=StreamingResponse,
    tags=["voicemails"],
)
def listen_voicemail(
    account_id: uuid.UUID,
    voicemail_id: uuid.UUID,
    p: VoicemailListener,
    rt: CurrentRuntime,
    reason: Reason = None,
) -> StreamingResponse:
    """Hear the voicemail: authorised, audited as a listen with its reason, decrypted as it
    streams."""
    from permanence.errors import ValidationFailed

    if p.is_staff and reason is None:
        raise ValidationFailed("say why you listen: the 'reason' parameter, e.g. reason=rappel")
    why = f"voicemail:{reason}" if reason else "voicemail:client"
    return played(rt, p, account_id, why, voicemail_id, check=voicemails.get_voicemail)


@router.post(
    "/accounts/{account_id}/voicemails/{voicemail_id}/message",
    status_code=201,
    responses=ERRORS,
    tags=["voicemails"],
)
def voicemail_to_message(
    account_id: uuid.UUID,
    voicemail_id: uuid.UUID,
    body: S.MessageIn,
    p: Writer,
    rt: CurrentRuntime,
) -> dict[str, Any]:
    """Write the voicemail down as a message under a purpose, in one step: the message
    keeps a link to the voicemail, which is treated."""
    with unit_of_work(rt, p, account_id, f"voicemail:{voicemail_id}") as s:
        msg = voicemails.to_message(
            s,
            rt.keyring,
            voicemail_id,
            purpose=body.purpose,
            values=body.values,
            urgent=body.urgent,
            confirm_undeclared=body.confirm_undeclared,
        )
        return {"id": str(msg.id), "voicemail_id": str(voicemail_id), "purpose": msg.purpose}


# -- a call's recording -------------------------------------------------------------------

Listener = Annotated[Principal, Depends(require(Role.CLIENT, Role.SUPERVISOR, Role.DPO))]


@recordings_router.get(
    "/accounts/{account_id}/recordings/{recording_id}/audio",
    responses={**ERRORS, 200: {"content": {"audio/wav": {}, "audio/mpeg": {}}}},
    response_class=StreamingResponse,
    tags=["recordings"],
)
def listen(
    account_id: uuid.UUID, recording_id: uuid.UUID, p: Listener, rt: CurrentRuntime
) -> StreamingResponse:
    """Listen to a recording: authorised, audited, decrypted as it streams."""
    return played(rt, p, account_id, f"recording:{recording_id}", recording_id)


@recordings_router.post(
    "/accounts/{account_id}/calls/{call_id}/recording/stop",
    status_code=204,
    responses=ERRORS,
    tags=["calls"],
)
def stop_recording(
    account_id: uuid.UUID, call_id: uuid.UUID, p: Operator, rt: CurrentRuntime
) -> None:
    """The operator's stop button: nothing more is kept of this call's recording."""
    from permanence.recordings import provider_hooks as telephony
    from permanence.telephony.api import telephony_api

    ctx = account_context(p, account_id, f"call:{call_id}")
    with unit_of_work(rt, p, account_id, f"call:{call_id}", readonly=True) as s:
        calls.get_call(s, call_id)
    telephony.stop_recording(rt, lambda provider: telephony_api(rt, provider), ctx, call_id)
