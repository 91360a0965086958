"""Restriction (Art. 18) and its lifting, objection (Art. 21)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.calls.model import Call
from permanence.consents.model import Consent
from permanence.crypto.keyring import Keyring
from permanence.db import utcnow
from permanence.delivery import service as delivery
from permanence.delivery.model import Delivery, Status
from permanence.errors import Conflict
from permanence.messages.model import Appointment, Message
from permanence.recordings.model import Recording
from permanence.rights import texts
from permanence.rights.base import CONTROLLER, Outbox, _check_role, _subject, get
from permanence.rights.letters import tell_requester
from permanence.rights.model import Kind, LetterKind, RightsRequest, State
from permanence.subjects import service as subjects
from permanence.subjects.model import Caller

# Messages, recordings, calls, appointments and consents are read here by caller id alone:
# their index is on the caller id alone, and with the account too SQLite picks the account's
# index and walks every row of the account. The caller is checked first to be of the context's
# account (``subjects.check_account``); row-level security applies on PostgreSQL.


def _restrict(session: Session, caller: Caller, now: dt.datetime) -> dict[str, Any]:
    subjects.check_account(session, caller.account_id)
    caller.restricted_at = now
    notified = 0
    for message_id in session.scalars(
        select(Message.id).where(Message.caller_id == caller.id)
    ).all():
        notified += len(delivery.notify_recipients(session, message_id, "restricted"))
    audit.record(
        session,
        "rights.restrict",
        "caller",
        caller.id,
        subject_id=caller.id,
        details={"notices": notified},
    )
    return {"restricted": 1, "notices": notified}


def lift_restriction(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    request_id: uuid.UUID,
    *,
    now: dt.datetime | None = None,
) -> tuple[RightsRequest, str, str]:
    """Lift a restriction: the subject is told first (Art. 18(3)), then processing resumes
    and deliveries held meanwhile go out."""
    _check_role(session, CONTROLLER, "lift a restriction")
    req = get(session, request_id)
    if req.kind != Kind.RESTRICTION.value or req.state != State.COMPLETED.value:
        raise Conflict("only a restriction that was applied can be lifted")
    if req.restriction_lifted_at is not None:
        raise Conflict("the restriction was already lifted")
    caller = _subject(session, req)
    if caller is None:
        raise Conflict("the data subject no longer exists")
    now = now or utcnow()
    letter = texts.restriction_lift_letter()
    channel = tell_requester(
        session, keyring, outbox, req, letter, kind=LetterKind.RESTRICTION_LIFT
    )
    caller.restricted_at = None
    req.restriction_lifted_at = now
    released = session.execute(
        update(Delivery)
        .where(
            Delivery.account_id == caller.account_id,
            Delivery.subject_id == caller.id,
            Delivery.status == Status.PENDING.value,
            Delivery.next_attempt_at.is_(None),
        )
        .values(next_attempt_at=now)
    )
    audit.record(
        session,
        "rights.restriction_lift",
        "caller",
        caller.id,
        subject_id=caller.id,
        details={"released": int(getattr(released, "rowcount", 0) or 0), "notice": channel},
    )
    return req, letter, channel


def _object(
    session: Session, req: RightsRequest, caller: Caller, now: dt.datetime
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    subjects.check_account(session, caller.account_id)
    files: list[tuple[str, str]] = []
    if req.scope == "recording":
        caller.recording_objected_at = now
        recs = list(session.scalars(select(Recording).where(Recording.caller_id == caller.id)))
        for rec in recs:
            files.append(("recordings", rec.storage_key))
            session.delete(rec)
        stopped = session.execute(
            update(Call)
            .where(
                Call.caller_id == caller.id,
                Call.recording_state.in_(("offered", "recording")),
            )
            .values(recording_state="objected")
        )
        session.flush()
        outcome = {
            "recordings_discarded": len(recs),
            "calls_stopped": int(getattr(stopped, "rowcount", 0) or 0),
        }
    else:
        # Objection to a purpose: the subject's records under it stop being processed.
        erased = 0
        for msg in session.scalars(
            select(Message).where(
                Message.caller_id == caller.id,
                Message.purpose == req.scope,
            )
        ).all():
            delivery.notify_recipients(session, msg.id, "erased")
            session.delete(msg)
            erased += 1
        appts = session.execute(
            delete(Appointment).where(
                Appointment.caller_id == caller.id,
                Appointment.purpose == req.scope,
            )
        )
        withdrawn = session.execute(
            update(Consent)
            .where(
                Consent.caller_id == caller.id,
                Consent.purpose == req.scope,
                Consent.withdrawn_at.is_(None),
            )
            .values(withdrawn_at=now, withdrawn_channel="web")
        )
        session.flush()
        outcome = {
            "messages_erased": erased,
            "appointments_erased": int(getattr(appts, "rowcount", 0) or 0),
            "consents_withdrawn": int(getattr(withdrawn, "rowcount", 0) or 0),
        }
    audit.record(
        session,
        "rights.object",
        "caller",
        caller.id,
        subject_id=caller.id,
        details={"scope": req.scope or "", **outcome},
    )
    return outcome, files
