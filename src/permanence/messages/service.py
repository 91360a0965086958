"""Taking messages and booking appointments under a purpose of the mandate.

What the operator submits is validated against the purpose (minimisation: undeclared fields
are refused, not dropped), then sealed under the caller's key. Nothing reaches the database
in clear, and the audit entry carries ids and the purpose code only.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.orm import Session, make_transient_to_detached

from permanence.accounts.model import MandateVersion
from permanence.accounts.service import mandate_by_id, mandate_version
from permanence.audit import service as audit
from permanence.calls.model import Call
from permanence.calls.service import get_call
from permanence.consents import service as consents
from permanence.context import Role
from permanence.crypto.keyring import Keyring
from permanence.crypto.model import SubjectKey
from permanence.db import ctx_of, note_core_insert, utcnow
from permanence.delivery import service as delivery
from permanence.errors import Conflict, NotFound, ValidationFailed
from permanence.mandates.forms import (
    FieldError,
    FormField,
    SubmissionInvalid,
    form_for,
    validate_submission,
)
from permanence.mandates.mandate import Mandate
from permanence.mandates.purposes import Purpose
from permanence.mandates.screening import Finding, screen
from permanence.messages.model import Appointment, Message
from permanence.staff.training import require_trained
from permanence.subjects import service as subjects
from permanence.subjects.model import Caller


class SubmissionRefused(ValidationFailed):
    """The submitted fields do not fit the purpose; ``errors`` name each field."""

    def __init__(self, exc: SubmissionInvalid) -> None:
        problems = [e.message for e in exc.errors]
        super().__init__("the form does not fit the purpose", problems=problems)
        self.errors = exc.errors


# session.info key: the rows `call_for_record` loaded, held for the unit of work.
_LOADED = "messages.loaded_for_call"
# Built once: building the joined select and its cache key was a third of its cost per message.
_FOR_RECORD = (
    select(Call, Caller, MandateVersion, SubjectKey)
    .join(Caller, Caller.id == Call.caller_id)
    .join(MandateVersion, MandateVersion.id == Call.mandate_id)
    .outerjoin(SubjectKey, SubjectKey.subject_id == Caller.id)
    .where(Call.id == bindparam("call_id"))
)


def call_for_record(session: Session, call_id: uuid.UUID) -> Call:
    """The call a message or appointment is taken on, loaded in one statement with its
    caller, its mandate version and the caller's key (instead of four primary-key loads).

    The rows land in the session's identity map, so the usual getters (`get_call`,
    `subjects.get`, `mandate_by_id`, `Keyring.cipher`) find them without a query and still
    make their checks (the context's account, a missing row, an erased key). The identity
    map holds objects weakly: the rows are kept in ``session.info`` for the unit of work.
    When the call has no caller or its caller or mandate version is not visible, nothing
    is preloaded and the getters query (and refuse) as before."""
    loaded: dict[uuid.UUID, tuple[object, ...]] = session.info.setdefault(_LOADED, {})
    if call_id not in loaded:
        row = session.execute(_FOR_RECORD, {"call_id": call_id}).first()
        if row is not None:
            loaded[call_id] = tuple(row)
    return get_call(session, call_id)


def _mandate_for(
    session: Session, account_id: uuid.UUID, call_id: uuid.UUID | None
) -> tuple[uuid.UUID, Mandate]:
    if call_id is not None:
        call = get_call(session, call_id)
        row, mandate = mandate_by_id(session, call.mandate_id)
    else:
        row, mandate = mandate_version(session, account_id)
    return row.id, mandate


class UndeclaredDataInText(ValidationFailed):
    """Free text holds personal data the purpose does not declare (types and offsets only)."""

    def __init__(self, purpose: str, findings: list[Finding]) -> None:
        super().__init__(
            "the text holds personal data the purpose does not declare: remove it"
            + ("" if any(f.refused for f in findings) else ", or confirm it is needed"),
            problems=[f.message(purpose) for f in findings],
        )
        self.findings = findings


class ConsentMissing(ValidationFailed):
    code = "consent_required"


def _validated(
    session: Session,
    caller_id: uuid.UUID,
    mandate: Mandate,
    purpose: str,
    values: Mapping[str, object],
    confirm_undeclared: bool = False,
) -> dict[str, object]:
    """Validate against the purpose, then screen its free text (see mandates.screening).

    A purpose resting on consent needs an active consent record for this caller (given on a
    call with the wording's version): the proof, not a checkbox. Refused types (NIR, card
    numbers, health data without an Art. 9 basis) always stop the save; other undeclared
    data stops it unless the operator confirmed it is needed.
    """
    try:
        p = mandate.purpose(purpose)
    except LookupError:
        raise ValidationFailed(f"purpose '{purpose}' is not in this account's mandate") from None
    needed = consents.needs_consent(p)
    consented = needed and consents.active(session, caller_id, purpose) is not None
    if needed and not consented:
        raise ConsentMissing(
            f"purpose '{purpose}' rests on the caller's consent, which has not been recorded "
            "(or was withdrawn)"
        )
    try:
        cleaned = validate_submission(mandate, purpose, values, explicit_consent=consented)
    except SubmissionInvalid as exc:
        raise SubmissionRefused(exc) from None
    findings = screen(mandate, purpose, cleaned)
    if any(f.refused for f in findings) or (findings and not confirm_undeclared):
        raise UndeclaredDataInText(purpose, findings)
    return cleaned


def validate_record(
    session: Session,
    caller_id: uuid.UUID,
    mandate: Mandate,
    purpose: str,
    values: Mapping[str, object],
    *,
    confirm_undeclared: bool = False,
) -> dict[str, object]:
    """The check a new message or appointment passes, for other services storing record fields.

    A rectification (rights) validates the record's fields after the change with it, so that
    what is rectified fits the purpose exactly as a new record would (`SubmissionRefused`,
    `ConsentMissing`, `UndeclaredDataInText`)."""
    return _validated(session, caller_id, mandate, purpose, values, confirm_undeclared)


def take_message(
    session: Session,
    keyring: Keyring,
    *,
    caller_id: uuid.UUID,
    purpose: str,
    values: Mapping[str, object],
    call_id: uuid.UUID | None = None,
    confirm_undeclared: bool = False,
    urgent: bool = False,
) -> Message:
    ctx = ctx_of(session)
    account_id = ctx.require_account()
    if call_id is not None:
        call_for_record(session, call_id)  # one statement instead of four (no-op if done)
    caller = subjects.get(session, caller_id)
    mandate_id, mandate = _mandate_for(session, account_id, call_id)
    cleaned = _validated(session, caller.id, mandate, purpose, values, confirm_undeclared)
    message_id = uuid.uuid4()
    cipher = keyring.cipher(session, account_id, caller.id)
    row: dict[str, Any] = {
        "id": message_id,
        "account_id": account_id,
        "caller_id": caller.id,
        "call_id": call_id,
        "mandate_id": mandate_id,
        "purpose": purpose,
        "status": "new",
        "urgent": urgent,
        "payload_sealed": cipher.seal_json("messages", "payload", message_id, cleaned),
        "created_at": utcnow(),
        "created_by": ctx.actor_id,
        "acknowledged_at": None,
        "voicemail_id": None,
    }
    msg = _insert_message(session, row)
    audit.record(
        session,
        "message.create",
        "message",
        msg.id,
        subject_id=caller.id,
        details={"purpose": purpose},
    )
    # The caller row is loaded: its restriction (Art. 18) is read from it, not re-queried.
    delivery.schedule(session, msg, mandate, restricted=caller.restricted_at is not None)
    return msg


_INSERT_MESSAGE = insert(cast(Table, Message.__table__))


def _insert_message(session: Session, row: dict[str, Any]) -> Message:
    """Write the new message with one prebuilt Core INSERT (every column given) and return it
    as a persistent object of the session, as if it had been flushed: the ORM's unit of work
    cost more than the statement on this path (ADR 0040). Later changes to the object (a
    voicemail's link, an acknowledgement) are flushed as UPDATEs as usual; the statistics'
    aggregates learn of the row through ``db.note_core_insert``."""
    session.flush()  # anything pending it refers to (a caller registered in this transaction)
    session.connection().execute(_INSERT_MESSAGE, row)
    note_core_insert(session, "messages", row)
    msg = Message(**row)
    make_transient_to_detached(msg)
    session.add(msg)
    return msg


def get_message(session: Session, message_id: uuid.UUID) -> Message:
    msg = session.get(Message, message_id)
    if msg is None or msg.account_id != ctx_of(session).account_id:
        raise NotFound("no such message")
    return msg


def read_message(session: Session, keyring: Keyring, msg: Message) -> dict[str, Any]:
    """Open a message's fields: a read of personal data, audited with the context's reason."""
    require_trained(session, ctx_of(session))
    from permanence.messages.medical import require_medical_access

    require_medical_access(session, msg.account_id, msg.caller_id)
    cipher = keyring.cipher(session, msg.account_id, msg.caller_id)
    fields: dict[str, Any] = cipher.open_json("messages", "payload", msg.id, msg.payload_sealed)
    audit.record(session, "message.read", "message", msg.id, subject_id=msg.caller_id)
    if ctx_of(session).role is Role.CLIENT:
        delivery.mark_viewed(session, msg.id)  # the ledger's "viewed": by the client only
    return fields


def book_appointment(
    session: Session,
    keyring: Keyring,
    *,
    caller_id: uuid.UUID,
    purpose: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    values: Mapping[str, object],
    call_id: uuid.UUID | None = None,
    confirm_undeclared: bool = False,
) -> Appointment:
    ctx = ctx_of(session)
    account_id = ctx.require_account()
    if ends_at <= starts_at:
        raise ValidationFailed("an appointment must end after it starts")
    if call_id is not None:
        call_for_record(session, call_id)  # one statement instead of four (no-op if done)
    caller = subjects.get(session, caller_id)
    mandate_id, mandate = _mandate_for(session, account_id, call_id)
    cleaned = _validated(session, caller.id, mandate, purpose, values, confirm_undeclared)
    clash = session.scalars(
        select(Appointment.id).where(
            Appointment.account_id == account_id,
            Appointment.status == "booked",
            Appointment.starts_at < ends_at,
            Appointment.ends_at > starts_at,
        )
    ).first()
    if clash is not None:
        raise Conflict("this slot overlaps another appointment")
    appt = Appointment(
        id=uuid.uuid4(),
        account_id=account_id,
        caller_id=caller.id,
        call_id=call_id,
        mandate_id=mandate_id,
        purpose=purpose,
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=ctx.actor_id,
        created_at=utcnow(),
    )
    cipher = keyring.cipher(session, account_id, caller.id)
    appt.payload_sealed = cipher.seal_json("appointments", "payload", appt.id, cleaned)
    session.add(appt)
    session.flush()
    audit.record(
        session,
        "appointment.create",
        "appointment",
        appt.id,
        subject_id=caller.id,
        details={"purpose": purpose},
    )
    return appt


def list_messages(
    session: Session, *, status: str | None = None, limit: int = 50, offset: int = 0
) -> list[Message]:
    """Messages of the context's account, newest first: metadata only, nothing opened."""
    account_id = ctx_of(session).require_account()
    from permanence.needtoknow.service import require_assigned

    require_assigned(session, account_id)
    q = select(Message).where(Message.account_id == account_id)
    if status is not None:
        q = q.where(Message.status == status)
    return list(
        session.scalars(
            q.order_by(Message.created_at.desc(), Message.id).limit(min(limit, 200)).offset(offset)
        )
    )


def acknowledge(session: Session, message_id: uuid.UUID) -> Message:
    """The client took charge of the message: recorded on the message and in the delivery
    ledger; escalation stops."""
    return cast(Message, delivery.mark_acknowledged(session, message_id))


@dataclass(frozen=True)
class CallForm:
    """What the operator fills in for one purpose on one call (the mandate version of the
    call, not the current one): the fields, and where consent stands."""

    purpose: Purpose
    fields: list[FormField]
    needs_consent: bool
    consent_given: bool
    books_appointment: bool


def form_for_call(session: Session, call_id: uuid.UUID, purpose: str) -> CallForm:
    call = get_call(session, call_id)
    _row, mandate = mandate_by_id(session, call.mandate_id)
    codes = {p.code for p in mandate.purposes}
    if purpose not in codes:
        raise NotFound(f"purpose '{purpose}' is not in this call's mandate")
    p = mandate.purpose(purpose)
    given = call.caller_id is not None and consents.active(session, call.caller_id, purpose)
    return CallForm(
        purpose=p,
        fields=form_for(mandate, purpose),
        needs_consent=consents.needs_consent(p),
        consent_given=bool(given),
        # A purpose that declares how long appointments are kept is one that books them.
        books_appointment=p.retention.appointment is not None,
    )


def check_fields(
    session: Session, call_id: uuid.UUID, purpose: str, values: Mapping[str, object]
) -> list[FieldError]:
    """Problems with a form being filled in (inline validation): nothing is stored or read.

    Consent is taken as given, since it is recorded separately before saving."""
    call = get_call(session, call_id)
    _row, mandate = mandate_by_id(session, call.mandate_id)
    if purpose not in {p.code for p in mandate.purposes}:
        raise NotFound(f"purpose '{purpose}' is not in this call's mandate")
    try:
        validate_submission(mandate, purpose, values, explicit_consent=True)
    except SubmissionInvalid as exc:
        return list(exc.errors)
    return []
