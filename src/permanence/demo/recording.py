"""The demo's recorded call (issue 22's evaluation grids need one): on the account whose
mandate records calls, one answered call is recorded through the product's own path, so that
a supervisor trying /evaluations finds a call to evaluate and listen to. The audio is a
generated tone, nobody's voice."""

from __future__ import annotations

import io
import math
import struct
import wave
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select

from permanence.accounts.model import Account
from permanence.context import AccessContext
from permanence.errors import Conflict
from permanence.runtime import Runtime

RECORDED_ACCOUNT = "plomberie-durand"
RECORDING_SECONDS = 3


def demo_audio(seconds: int = RECORDING_SECONDS, rate: int = 8000) -> bytes:
    """A short generated WAV (a 440 Hz tone, 8 kHz mono 16-bit like a telephone line): the
    demo's recording, no voice and nobody's words in it."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(6000 * math.sin(2 * math.pi * 440 * i / rate)))
                for i in range(seconds * rate)
            )
        )
    return buffer.getvalue()


class _DemoProvider:
    """The telephony provider's side of the demo's one recording: the download serves the
    generated audio, the deletion at the provider has nothing to delete."""

    def __init__(self, audio: bytes) -> None:
        self.audio = audio

    @contextmanager
    def fetch_recording(self, url: str) -> Iterator[Iterator[bytes]]:
        yield iter([self.audio])

    def delete_recording(self, recording_sid: str) -> None:
        return None

    def stop_recording(self, call_sid: str) -> None:
        return None

    def call_status(self, call_sid: str) -> tuple[str, int | None]:
        return "completed", None

    # The demo places no call (the calls API's other side).
    def create_call(
        self, *, to: str, from_: str, url: str, status_callback: str, timeout: int
    ) -> str:
        raise Conflict("the demo provider places no call")

    def cancel_call(self, call_sid: str) -> None:
        return None

    def redirect_call(self, call_sid: str, url: str) -> None:
        return None


def record_demo_call(rt: Runtime) -> str:
    """One answered call of ``RECORDED_ACCOUNT`` recorded through the product's own path: the
    provider's recording callback queues the download
    (``recordings.provider_hooks.queue_recording``), the download job fetches, encrypts under
    the caller's key and stores it
    (``recordings.downloads.run_due``), as with a real provider."""
    from permanence.calls.model import Call
    from permanence.recordings import downloads
    from permanence.recordings.provider_hooks import queue_recording
    from permanence.telephony.webhook import Webhook

    with rt.db.session(AccessContext.system("cli:demo"), readonly=True) as s:
        account_id = s.scalars(select(Account.id).where(Account.slug == RECORDED_ACCOUNT)).one()
    ctx = AccessContext.system("cli:demo", account_id)
    with rt.db.session(ctx) as s:
        call = s.scalars(
            select(Call)
            .where(
                Call.account_id == account_id,
                Call.answered_at.is_not(None),
                Call.operator_id.is_not(None),
            )
            .order_by(Call.answered_at.desc())
        ).first()
        if call is None:
            raise Conflict(f"the demo account {RECORDED_ACCOUNT} has no answered call")
        # As the telephony webhooks leave a call whose caller heard the recording notice.
        call.provider_sid = call.provider_sid or f"CA{call.id.hex}"
        call.recording_state = "recording"
        hook = Webhook(
            provider="twilio",
            form={
                "CallSid": call.provider_sid,
                "RecordingSid": f"RE{call.id.hex}",
                "RecordingUrl": rt.settings.twilio_api_base_url.rstrip("/")
                + f"/2010-04-01/Accounts/demo/Recordings/RE{call.id.hex}",
                "RecordingStatus": "completed",
                "RecordingDuration": str(RECORDING_SECONDS),
            },
            query={"a": str(account_id), "c": str(call.id)},
        )
        job = queue_recording(s, rt.settings, hook)
    if job is None:
        raise Conflict("the demo recording was not queued")
    counts = downloads.run_due(rt, _DemoProvider(demo_audio()), only=(account_id, job))
    if counts["stored"] != 1:
        raise Conflict(f"the demo recording was not stored: {counts}")
    return f"account {RECORDED_ACCOUNT}: 1 recorded call to evaluate (/evaluations)"
