"""The registries that let a lower feature call a higher one without importing it (ADR 0033,
0037): the features that send through the delivery ledger register how to prepare their
channel and how to read a voicemail or a message; routing registers the queue the voice
webhooks hand calls to; the statistics' session events are imported when a Database is made.
Each must be found from a cold start, whatever was imported first: run in a fresh
interpreter, where nothing else has imported those features yet."""

from __future__ import annotations

import subprocess
import sys

COLD_START = """
import sys
from permanence.delivery import own_channels, service
from permanence.delivery.model import Channel

features = ("permanence.rights.callbacks", "permanence.calls.notice_sms",
            "permanence.recordings.voicemails", "permanence.messages")
print("before:", *[m for m in features if m in sys.modules])
for channel in (Channel.OPENDSR_CALLBACK, Channel.NOTICE_SMS):
    print(f"{channel.value}:{own_channels.preparer(channel).__module__}")
print(f"voicemail:{service.voicemail_reader().__module__}")
print(f"message:{service.message_reader().__module__}")
"""


def test_each_channel_preparer_and_the_readers_are_found_from_a_cold_start() -> None:
    run = subprocess.run(
        [sys.executable, "-c", COLD_START], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "before:",
        "opendsr_callback:permanence.rights.callbacks",
        "notice_sms:permanence.calls.notice_sms",
        "voicemail:permanence.recordings.voicemails",
        "message:permanence.messages.ledger",
    ]


QUEUE_COLD_START = """
import sys
from permanence.telephony import service

print("before:", "permanence.routing.queue" in sys.modules)
leg = service.queue_leg()
print(f"queue:{leg.__module__}.{leg.__name__}")
"""


def test_the_voice_webhooks_find_routings_queue_from_a_cold_start() -> None:
    """The in-hours leg in queue mode is routing's; the voice webhooks do not import routing
    (ADR 0037), so its registry imports the module it names before it reads."""
    run = subprocess.run(
        [sys.executable, "-c", QUEUE_COLD_START], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["before: False", "queue:permanence.routing.queue.enqueue"]


SESSION_EVENTS_COLD_START = """
import sys
from sqlalchemy import event
from sqlalchemy.orm import Session
from permanence.calls.model import Call
from permanence.db import Database

print("before:", "permanence.stats.aggregates" in sys.modules)
Database("sqlite://")
aggregates = sys.modules["permanence.stats.aggregates"]  # imported by the Database, not here

import permanence.db as db
print("listening:", all(
    event.contains(Session, name, fn)
    for name, fn in (
        ("before_flush", aggregates._before_flush_all),
        ("after_flush", aggregates._after_flush),
        ("do_orm_execute", aggregates._on_statement),
        ("after_soft_rollback", aggregates._forget),
    )
) and (db.COMMIT_STATS, aggregates._before_commit) in db._commit_steps)
"""


def test_a_database_registers_the_aggregates_session_events_from_a_cold_start() -> None:
    """Calls and messages no longer import the statistics that count them (ADR 0037): every
    process that makes a Database has the aggregates' listeners (ADR 0032), whatever it
    imported."""
    run = subprocess.run(
        [sys.executable, "-c", SESSION_EVENTS_COLD_START],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["before: False", "listening: True"]
