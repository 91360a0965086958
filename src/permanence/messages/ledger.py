"""How the delivery ledger reads a message: registered with ``delivery.targets`` (which imports
this module by name before it reads), so that delivery does not import messages, which
builds on it (ADR 0037; the voicemail's reader is ``recordings.voicemails``)."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from permanence.delivery.targets import reads_messages
from permanence.messages.model import Message


@reads_messages
def read_message(session: Session, message_id: uuid.UUID) -> Message | None:
    """The message, as ``session.get`` finds it (the ledger checks its account)."""
    return session.get(Message, message_id)
