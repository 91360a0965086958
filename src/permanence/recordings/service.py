"""Recordings: the policy that decides whether a call is recorded, and playback.

Policy (CNIL): off unless the mandate enables it, and then only for a sample of calls or
within dated periods, never every call. Every listen is authorised and audited; playback
decrypts as it streams (constant memory), so the audio is never written anywhere in clear.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.context import Role
from permanence.crypto.keyring import Keyring
from permanence.crypto.stream import decrypt_stream
from permanence.db import ctx_of
from permanence.errors import NotFound, PermissionDenied
from permanence.filestore import RecordingStore
from permanence.mandates.mandate import Mandate
from permanence.recordings.model import Recording
from permanence.staff.training import require_trained

PARIS = ZoneInfo("Europe/Paris")
# Who may listen: the supervisor who evaluates, the DPO, and the client (controller).
LISTENERS = frozenset({Role.SUPERVISOR, Role.DPO, Role.CLIENT})


def should_record(mandate: Mandate, call_key: str, when: dt.datetime) -> bool:
    """Whether this call falls under the mandate's recording policy
    (``mandate.recording.records``, ADR 0037)."""
    return mandate.recording.records(call_key, when)


@dataclass(frozen=True)
class Playback:
    recording_id: uuid.UUID
    content_type: str
    size_bytes: int
    chunks: Iterator[bytes]


def get_recording(session: Session, recording_id: uuid.UUID) -> Recording:
    rec = session.get(Recording, recording_id)
    if rec is None or rec.account_id != ctx_of(session).account_id:
        raise NotFound("no such recording")
    return rec


def open_playback(
    session: Session, keyring: Keyring, store: RecordingStore, recording_id: uuid.UUID
) -> Playback:
    """Authorise and audit a listen, then stream the decrypted audio.

    The key is read now (inside the transaction that records the listen); the returned
    iterator only reads the encrypted file, so it can outlive the session.
    """
    ctx = ctx_of(session)
    if ctx.role not in LISTENERS and ctx.role is not Role.OPERATOR:
        raise PermissionDenied(
            "listening to recordings is reserved to supervisors, the DPO and the client"
        )
    require_trained(session, ctx)
    rec = get_recording(session, recording_id)
    if ctx.role is Role.OPERATOR and rec.kind != "voicemail":
        # Operators hear voicemails (to call back, to write them down), never conversations.
        raise PermissionDenied(
            "listening to call recordings is reserved to supervisors, the DPO and the client"
        )
    cipher = keyring.cipher(session, rec.account_id, rec.caller_id)
    ad = cipher.ad("recordings", "audio", rec.id)
    audit.record(
        session,
        "recording.listen",
        "recording",
        rec.id,
        subject_id=rec.caller_id,
        details={"call": rec.call_id, "kind": rec.kind},
    )
    dek, key = cipher.dek, rec.storage_key

    def chunks() -> Iterator[bytes]:
        with store.open(key) as fh:
            yield from decrypt_stream(dek, ad, fh)

    return Playback(rec.id, rec.content_type, rec.size_bytes, chunks())
