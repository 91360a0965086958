"""The voicemail inbox: voicemails reach a person (issue 15).

A voicemail is a ``Recording`` of kind ``voicemail``: ``new`` until someone of the account or
the desk treats it (``treated_at``/``treated_by``, audited). Who sees the inbox: the
account's client users, operators and supervisors. Who hears it: the client, supervisors,
the DPO and trained operators — every listen audited with the context's reason
(``recordings.service.open_playback``). An operator turns a voicemail into a message under
a purpose in one step: the message keeps a link to its voicemail, and the voicemail is
treated. A new voicemail is announced through the delivery ledger
(``delivery.service.schedule_voicemail``), with no personal data in the notices.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.context import Role
from permanence.crypto.keyring import Keyring
from permanence.db import ctx_of, utcnow
from permanence.delivery import service as delivery
from permanence.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from permanence.messages.model import Message
from permanence.recordings.model import Recording
from permanence.staff.training import require_trained

READERS = frozenset({Role.CLIENT, Role.OPERATOR, Role.SUPERVISOR})
STATES = ("new", "treated")


@dataclass(frozen=True)
class Voicemail:
    id: uuid.UUID
    call_id: uuid.UUID
    account_id: uuid.UUID
    received_at: dt.datetime
    duration_s: int | None
    state: str
    treated_at: dt.datetime | None
    caller: dict[str, Any] | None
    caller_restricted: bool

    @property
    def playback_url(self) -> str:
        return f"/api/v1/accounts/{self.account_id}/voicemails/{self.id}/audio"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "call_id": str(self.call_id),
            "received_at": self.received_at.isoformat(),
            "duration_s": self.duration_s,
            "state": self.state,
            "treated_at": self.treated_at.isoformat() if self.treated_at else None,
            "caller": self.caller,
            "caller_restricted": self.caller_restricted,
            "playback_url": self.playback_url,
        }


def _require_reader(session: Session) -> uuid.UUID:
    ctx = ctx_of(session)
    if ctx.role not in READERS:
        raise PermissionDenied("the voicemail inbox is for the client, operators and supervisors")
    if ctx.role is not Role.CLIENT:
        require_trained(session, ctx)
    return ctx.require_account()


@delivery.reads_voicemails
def _notice(session: Session, recording_id: uuid.UUID) -> delivery.VoicemailNotice | None:
    """A voicemail as the delivery ledger sees it (its escalation clock, its notices)."""
    rec = session.get(Recording, recording_id)
    if rec is None or rec.kind != "voicemail":
        return None
    return delivery.VoicemailNotice(
        rec.id, rec.account_id, rec.caller_id, rec.created_at, rec.treated_at
    )


def get_voicemail(session: Session, voicemail_id: uuid.UUID) -> Recording:
    account_id = ctx_of(session).require_account()
    rec = session.get(Recording, voicemail_id)
    if rec is None or rec.account_id != account_id or rec.kind != "voicemail":
        raise NotFound("no such voicemail")
    return rec


def _caller(
    session: Session, keyring: Keyring, rec: Recording
) -> tuple[dict[str, Any] | None, bool]:
    """Who called, if known: a name the desk recorded, else the number (audited reads)."""
    from permanence.calls.model import Call
    from permanence.subjects import service as subjects

    try:
        subject = subjects.get(session, rec.caller_id)
        ident = subjects.identity(session, keyring, subject)
    except PermissionDenied:
        return None, True
    except NotFound:
        return None, False
    phone = ident.phone
    call = session.get(Call, rec.call_id)
    if phone is None and call is not None and call.from_sealed is not None:
        cipher = keyring.cipher(session, rec.account_id, rec.caller_id)
        phone = cipher.open_text("calls", "from", call.id, call.from_sealed)
    if ident.full_name is None and phone is None:
        return None, False
    return {"id": str(subject.id), "name": ident.full_name, "phone": phone}, False


def inbox(
    session: Session, keyring: Keyring, *, state: str | None = None, limit: int = 50
) -> list[Voicemail]:
    """The account's voicemails, newest first (``state``: new or treated; None: both)."""
    account_id = _require_reader(session)
    if state is not None and state not in STATES:
        raise ValidationFailed("state must be 'new' or 'treated'")
    q = select(Recording).where(Recording.account_id == account_id, Recording.kind == "voicemail")
    if state == "new":
        q = q.where(Recording.treated_at.is_(None))
    elif state == "treated":
        q = q.where(Recording.treated_at.is_not(None))
    rows = session.scalars(
        q.order_by(Recording.created_at.desc(), Recording.id).limit(min(max(limit, 1), 200))
    ).all()
    out = []
    for rec in rows:
        caller, restricted = _caller(session, keyring, rec)
        out.append(
            Voicemail(
                rec.id,
                rec.call_id,
                rec.account_id,
                rec.created_at,
                rec.duration_s,
                "treated" if rec.treated_at else "new",
                rec.treated_at,
                caller,
                restricted,
            )
        )
    return out


def count_new(session: Session) -> int:
    """New voicemails of the context's account (the console's per-account count)."""
    from sqlalchemy import func

    account_id = ctx_of(session).require_account()
    return int(
        session.scalar(
            select(func.count()).where(
                Recording.account_id == account_id,
                Recording.kind == "voicemail",
                Recording.treated_at.is_(None),
            )
        )
        or 0
    )


def treat(session: Session, voicemail_id: uuid.UUID) -> Recording:
    """Mark a voicemail treated (who and when kept, audited); treating twice changes nothing.
    Its pending alerts are cancelled and its escalation stops."""
    _require_reader(session)
    rec = get_voicemail(session, voicemail_id)
    if rec.treated_at is not None:
        return rec
    ctx = ctx_of(session)
    rec.treated_at = utcnow()
    rec.treated_by = ctx.actor_id
    audit.record(session, "voicemail.treat", "recording", rec.id, details={"call": rec.call_id})
    delivery.voicemail_treated(session, rec.id, rec.treated_at)
    return rec


def to_message(
    session: Session,
    keyring: Keyring,
    voicemail_id: uuid.UUID,
    *,
    purpose: str,
    values: Mapping[str, object],
    urgent: bool = False,
    confirm_undeclared: bool = False,
) -> Message:
    """The operator writes the voicemail down as a message under ``purpose``: one step, the
    message linked to its voicemail, the voicemail treated."""
    from permanence.messages import service as messages

    ctx = ctx_of(session)
    if ctx.role not in (Role.OPERATOR, Role.SUPERVISOR):
        raise PermissionDenied("operators and supervisors turn voicemails into messages")
    rec = get_voicemail(session, voicemail_id)
    if rec.treated_at is not None:
        raise Conflict("this voicemail has already been treated")
    msg = messages.take_message(
        session,
        keyring,
        caller_id=rec.caller_id,
        purpose=purpose,
        values=values,
        call_id=rec.call_id,
        urgent=urgent,
        confirm_undeclared=confirm_undeclared,
    )
    msg.voicemail_id = rec.id
    treat(session, rec.id)
    return msg
