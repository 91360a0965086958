"""The delivery ledger's registries (ADR 0033): the features that send through the ledger
register how to prepare their channel and how to read a voicemail; delivery imports none of
them, so the registries must find every entry from a cold start, whatever was imported first.
Run in a fresh interpreter, where nothing else has imported those features yet."""

from __future__ import annotations

import subprocess
import sys

COLD_START = """
import sys
from permanence.delivery import own_channels, service
from permanence.delivery.model import Channel

features = ("permanence.rights.callbacks", "permanence.calls.notice_sms",
            "permanence.recordings.voicemails")
print("before:", *[m for m in features if m in sys.modules])
for channel in (Channel.OPENDSR_CALLBACK, Channel.NOTICE_SMS):
    print(f"{channel.value}:{own_channels.preparer(channel).__module__}")
print(f"voicemail:{service.voicemail_reader().__module__}")
"""


def test_each_channel_preparer_and_the_voicemail_reader_are_found_from_a_cold_start() -> None:
    run = subprocess.run(
        [sys.executable, "-c", COLD_START], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "before:",
        "opendsr_callback:permanence.rights.callbacks",
        "notice_sms:permanence.calls.notice_sms",
        "voicemail:permanence.recordings.voicemails",
    ]
