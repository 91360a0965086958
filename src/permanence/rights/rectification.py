"""Rectification (Art. 16): the changes asked for, checked at intake, applied on execution."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.service import mandate_by_id
from permanence.audit import service as audit
from permanence.crypto.keyring import Keyring
from permanence.db import ctx_of
from permanence.delivery import service as delivery
from permanence.errors import NotFound, ValidationFailed
from permanence.mandates.forms import SubmissionInvalid, validate_fields
from permanence.messages import service as messages
from permanence.messages.model import Appointment, Message
from permanence.rights.base import IDENTITY_FIELDS, IDENTITY_SPEC, _details
from permanence.rights.model import Rectification, RightsRequest
from permanence.subjects import service as subjects
from permanence.subjects.model import Caller


def _changes_problems(changes: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    unknown = set(changes) - {"identity", "records"}
    if unknown:
        problems.append("changes: only 'identity' and 'records' may be given")
    ident = changes.get("identity") or {}
    if not isinstance(ident, dict) or set(ident) - set(IDENTITY_FIELDS):
        problems.append("changes.identity: only " + ", ".join(IDENTITY_FIELDS))
    records = changes.get("records") or []
    if not isinstance(records, list):
        problems.append("changes.records: a list")
        return problems
    for i, rec in enumerate(records):
        if (
            not isinstance(rec, dict)
            or rec.get("kind") not in ("message", "appointment")
            or not isinstance(rec.get("fields"), dict)
        ):
            problems.append(
                f"changes.records[{i}]: needs kind (message or appointment), id and fields"
            )
            continue
        try:
            uuid.UUID(str(rec.get("id")))
        except ValueError:
            problems.append(f"changes.records[{i}].id: not a valid id")
    return problems


def _checked_identity(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The identity changes cleaned like a form's fields; a blank value clears that part."""
    try:
        cleaned = validate_fields(
            IDENTITY_SPEC, changes, owner="the caller's identity", code="identity"
        )
    except SubmissionInvalid as exc:
        raise ValidationFailed(
            "changes.identity: the rectified identity is not valid",
            [f"changes.identity.{e.field}: {e.message}" for e in exc.errors],
        ) from None
    return {k: cleaned.get(k) for k in changes}


def _record_of(
    session: Session, kind: str, rid: uuid.UUID, account_id: uuid.UUID
) -> Message | Appointment | None:
    rec: Message | Appointment | None = (
        session.get(Message, rid) if kind == "message" else session.get(Appointment, rid)
    )
    if rec is None or rec.account_id != account_id:
        return None
    return rec


def _checked_record(
    session: Session,
    keyring: Keyring,
    index: int,
    rec: Message | Appointment,
    fields: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, object]]:
    """The record's payload before, and after the change as a new record would be stored.

    The record's fields after the change pass the very check a new record of the same purpose
    passes (messages.validate_record: types, lengths, required fields, formats, consent, and
    the screening of free text, the subject having asked for what they wrote to be there)."""
    table = "messages" if isinstance(rec, Message) else "appointments"
    _row, mandate = mandate_by_id(session, rec.mandate_id)
    allowed = set(mandate.purpose(rec.purpose).field_names)
    outside = sorted(set(fields) - allowed)
    if outside:
        raise ValidationFailed(
            "these fields are not part of the record's purpose: " + ", ".join(outside)
        )
    cipher = keyring.cipher(session, rec.account_id, rec.caller_id)
    payload: dict[str, Any] = cipher.open_json(table, "payload", rec.id, rec.payload_sealed)
    merged = {**payload, **fields}
    try:
        cleaned = messages.validate_record(
            session, rec.caller_id, mandate, rec.purpose, merged, confirm_undeclared=True
        )
    except ValidationFailed as exc:
        raise ValidationFailed(
            f"changes.records[{index}]: the rectified record does not fit its purpose",
            list(exc.problems),
        ) from None
    return payload, cleaned


def _check_rectification(
    session: Session, keyring: Keyring, changes: Mapping[str, Any], caller: Caller | None
) -> None:
    """At intake: refuse what could never be applied, before anything is written."""
    if changes.get("identity"):
        _checked_identity(changes["identity"])
    account_id = ctx_of(session).require_account()
    for i, item in enumerate(changes.get("records") or []):
        rec = _record_of(session, item["kind"], uuid.UUID(str(item["id"])), account_id)
        if rec is not None:  # whose record it is is checked once the subject is known
            _checked_record(session, keyring, i, rec, item["fields"])


def _rectify(
    session: Session, keyring: Keyring, req: RightsRequest, caller: Caller, now: dt.datetime
) -> dict[str, Any]:
    subjects.check_account(session, caller.account_id)
    details = _details(keyring, req)
    changes: dict[str, Any] = details.get("changes") or {}
    statement: str | None = details.get("statement")
    cipher = keyring.cipher(session, caller.account_id, caller.id)
    actor = ctx_of(session).actor_id
    history: list[tuple[str, uuid.UUID, dict[str, Any]]] = []
    notify: set[uuid.UUID] = set()
    ident_changes = changes.get("identity") or {}
    if ident_changes:
        before = subjects.identity(session, keyring, caller)
        old = {k: getattr(before, k) for k in IDENTITY_FIELDS}
        new = {**old, **_checked_identity(ident_changes)}
        subjects.update_identity(session, keyring, caller, subjects.Identity(**new))
        changed = {k for k in IDENTITY_FIELDS if old[k] != new[k]}
        history.append(
            (
                "caller",
                caller.id,
                {
                    "before": {k: old[k] for k in sorted(changed)},
                    "after": {k: new[k] for k in sorted(changed)},
                },
            )
        )
        # The recipients received messages about this person: tell them all (Art. 19).
        # By caller id alone (its index; with the account too SQLite walks the account's
        # messages): the caller was checked to be of the context's account above.
        notify.update(session.scalars(select(Message.id).where(Message.caller_id == caller.id)))
    for i, item in enumerate(changes.get("records") or []):
        is_message = item["kind"] == "message"
        table = "messages" if is_message else "appointments"
        rec = _record_of(session, item["kind"], uuid.UUID(str(item["id"])), caller.account_id)
        if rec is None or rec.caller_id != caller.id:
            raise NotFound(f"no such {item['kind']} of this data subject")
        fields: dict[str, Any] = item["fields"]
        payload, cleaned = _checked_record(session, keyring, i, rec, fields)
        previous = {k: payload.get(k) for k in sorted(fields)}
        rec.payload_sealed = cipher.seal_json(table, "payload", rec.id, cleaned)
        after = {k: cleaned.get(k) for k in sorted(fields)}
        history.append((item["kind"], rec.id, {"before": previous, "after": after}))
        if is_message:
            notify.add(rec.id)
    if statement:
        history.append(("caller", caller.id, {"statement": statement}))
    for kind, record_id, change in history:
        row = Rectification(
            id=uuid.uuid4(),
            account_id=caller.account_id,
            caller_id=caller.id,
            request_id=req.id,
            record_kind=kind,
            record_id=record_id,
            at=now,
            by=actor,
        )
        row.changed_sealed = cipher.seal_json("rectifications", "changed", row.id, change)
        session.add(row)
    session.flush()
    notified = 0
    for message_id in sorted(notify):
        notified += len(delivery.notify_recipients(session, message_id, "rectified"))
    audit.record(
        session,
        "rights.rectify",
        "caller",
        caller.id,
        subject_id=caller.id,
        details={"changes": len(history), "notices": notified},
    )
    return {"rectified": len(history), "notices": notified}
