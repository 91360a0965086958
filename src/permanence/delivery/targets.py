"""What a ledger row announces: a message or a voicemail, as the ledger sees it. Each is read
through the reader its feature registers (``messages.ledger``, ``recordings.voicemails``),
imported by name here before it is read (as ``permanence.checks`` imports the checks), so that
delivery imports neither messages nor recordings, which build on it (ADR 0033, 0037). Split
from ``delivery.service``, which re-exports what its callers used from there.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from permanence.delivery.model import Event
from permanence.slots import Slot


class Notifiable(Protocol):
    """What the ledger reads of the thing it announces: a message, or a voicemail."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def account_id(self) -> uuid.UUID: ...
    @property
    def caller_id(self) -> uuid.UUID: ...
    @property
    def acknowledged_at(self) -> dt.datetime | None: ...
    @property
    def urgent(self) -> bool: ...
    @property
    def purpose(self) -> str | None: ...
    @property
    def created_at(self) -> dt.datetime: ...


@dataclass(frozen=True)
class VoicemailNotice:
    """A voicemail as the ledger sees it: "acknowledged" is "treated" in the inbox."""

    id: uuid.UUID
    account_id: uuid.UUID
    caller_id: uuid.UUID
    created_at: dt.datetime
    acknowledged_at: dt.datetime | None
    urgent: bool = False
    purpose: str | None = None


class LedgerMessage(Protocol):
    """What the ledger reads and writes of a message (``messages.model.Message``): read through
    the reader ``messages.ledger`` registers, so that delivery does not import messages, which
    builds on it (ADR 0037)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def account_id(self) -> uuid.UUID: ...
    @property
    def caller_id(self) -> uuid.UUID: ...
    @property
    def mandate_id(self) -> uuid.UUID: ...
    @property
    def urgent(self) -> bool: ...
    @property
    def purpose(self) -> str | None: ...
    @property
    def created_at(self) -> dt.datetime: ...

    acknowledged_at: dt.datetime | None
    status: str


# How to read a message as the ledger sees it: registered by ``messages.ledger`` with
# ``@reads_messages``, imported by name here (as the voicemail's reader below), so that delivery
# does not import messages, which builds on it (ADR 0037).
MessageReader = Callable[[Session, uuid.UUID], LedgerMessage | None]
MESSAGE_MODULE = "permanence.messages.ledger"
_MESSAGE_READER: Slot[MessageReader] = Slot(
    MESSAGE_MODULE, "a message reader is registered already"
)
reads_messages = _MESSAGE_READER.register
message_reader = _MESSAGE_READER.get


def read_message(session: Session, message_id: uuid.UUID) -> LedgerMessage | None:
    """The message ``message_id`` as the ledger sees it; None if there is no such one."""
    return message_reader()(session, message_id)


# How to read a voicemail as the ledger sees it: registered by ``recordings.voicemails`` with
# ``@reads_voicemails``, imported by name here (as ``permanence.checks`` imports the checks) so
# that delivery does not import recordings, which builds on it (ADR 0033).
VoicemailReader = Callable[[Session, uuid.UUID], VoicemailNotice | None]
VOICEMAIL_MODULE = "permanence.recordings.voicemails"
_VOICEMAIL_READER: Slot[VoicemailReader] = Slot(
    VOICEMAIL_MODULE, "a voicemail reader is registered already"
)
reads_voicemails = _VOICEMAIL_READER.register
voicemail_reader = _VOICEMAIL_READER.get


def voicemail_notice(session: Session, recording_id: uuid.UUID) -> VoicemailNotice | None:
    """The voicemail ``recording_id`` as the ledger sees it; None if there is no such one."""
    return voicemail_reader()(session, recording_id)


def target_of(session: Session, event: str, target_id: uuid.UUID) -> Notifiable | None:
    """The message (or, for ``voicemail`` rows, the voicemail) a ledger row announces."""
    if event == Event.VOICEMAIL:
        return voicemail_notice(session, target_id)
    return read_message(session, target_id)
