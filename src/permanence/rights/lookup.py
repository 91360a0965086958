"""What is on file about a subject, and who received it (Art. 19)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.calls.model import Call
from permanence.consents.model import Consent
from permanence.crypto.keyring import Keyring
from permanence.delivery import ledger as delivery
from permanence.delivery.model import Delivery
from permanence.errors import Conflict
from permanence.messages.model import Appointment, Message
from permanence.recordings.model import Recording
from permanence.rights.base import EXECUTORS, SUBMITTERS, _check_role, _subject, get
from permanence.rights.model import Rectification, RightsRequest
from permanence.subjects import service as subjects
from permanence.subjects.model import Caller


@dataclass
class SubjectRecords:
    """Every record of one subject, found by indexed ids (nothing decrypted to find them)."""

    caller: Caller
    calls: list[Call] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    appointments: list[Appointment] = field(default_factory=list)
    consents: list[Consent] = field(default_factory=list)
    recordings: list[Recording] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    requests: list[RightsRequest] = field(default_factory=list)
    rectifications: list[Rectification] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "calls": len(self.calls),
            "messages": len(self.messages),
            "appointments": len(self.appointments),
            "consents": len(self.consents),
            "recordings": len(self.recordings),
            "deliveries": len(self.deliveries),
            "requests": len(self.requests),
            "rectifications": len(self.rectifications),
        }


def records_of(session: Session, caller: Caller) -> SubjectRecords:
    """Every record of ``caller`` (of the context's account): by caller id on indexed columns."""
    subjects.check_account(session, caller.account_id)
    a, c = caller.account_id, caller.id

    def rows(model: Any, column: Any, order: Any) -> list[Any]:
        # By caller id alone where the index is on the caller id alone: with an account filter
        # too, SQLite may pick the (account, date) index and walk the whole account. The caller
        # was checked to be of this account; row-level security applies on PostgreSQL.
        where = [column == c]
        if model in (Delivery, RightsRequest, Rectification):  # indexed (account, subject)
            where.append(model.account_id == a)
        return list(session.scalars(select(model).where(*where).order_by(order)))

    return SubjectRecords(
        caller=caller,
        calls=rows(Call, Call.caller_id, Call.started_at),
        messages=rows(Message, Message.caller_id, Message.created_at),
        appointments=rows(Appointment, Appointment.caller_id, Appointment.starts_at),
        consents=rows(Consent, Consent.caller_id, Consent.given_at),
        recordings=rows(Recording, Recording.caller_id, Recording.created_at),
        deliveries=rows(Delivery, Delivery.subject_id, Delivery.created_at),
        requests=rows(RightsRequest, RightsRequest.subject_id, RightsRequest.received_at),
        rectifications=rows(Rectification, Rectification.caller_id, Rectification.at),
    )


def find_records(
    session: Session,
    keyring: Keyring,
    *,
    phone: str | None = None,
    email: str | None = None,
    name: str | None = None,
) -> list[SubjectRecords]:
    """The subject(s) matching the identifiers (blind index), each with every record."""
    found = subjects.find(session, keyring, phone=phone, email=email, name=name)
    return [records_of(session, caller) for caller in found]


def recipients(session: Session, request_id: uuid.UUID) -> list[delivery.Recipient]:
    """Art. 19: who received the subject's messages (on the subject's request)."""
    _check_role(session, EXECUTORS | SUBMITTERS, "see the recipients")
    req = get(session, request_id)
    caller = _subject(session, req)
    if caller is None:
        return []
    if req.verified_at is None:
        raise Conflict("verify the requester's identity before disclosing anything")
    subjects.check_account(session, caller.account_id)  # then by caller id alone (records_of)
    seen: dict[tuple[str, str], delivery.Recipient] = {}
    for message_id in session.scalars(
        select(Message.id).where(Message.caller_id == caller.id)
    ).all():
        for r in delivery.recipients_of(session, message_id):
            key = (r.channel, r.description)
            if key not in seen or r.first_received_at < seen[key].first_received_at:
                seen[key] = r
    audit.record(session, "rights.recipients", "rights_request", req.id, subject_id=req.subject_id)
    return sorted(seen.values(), key=lambda r: r.first_received_at)
