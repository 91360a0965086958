"""Opening a call: route by the dialled number, recognise the caller, pin the mandate version.

The caller's number is stored sealed under the caller's own key; an unknown number becomes a
new data subject, so that every call has a subject whose erasure reaches it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account
from permanence.accounts.service import account_for_did, mandate_version
from permanence.audit import service as audit
from permanence.calls import outcome as outcomes
from permanence.calls import presence
from permanence.calls.model import Call
from permanence.crypto import normalize
from permanence.crypto.keyring import Keyring
from permanence.db import ctx_of, switch_account, utcnow
from permanence.errors import NotFound
from permanence.mandates.mandate import Mandate
from permanence.staff.training import require_trained
from permanence.subjects import service as subjects
from permanence.subjects.model import Caller


@dataclass(frozen=True)
class OpenedCall:
    call: Call
    account: Account
    mandate: Mandate
    caller: Caller
    known_caller: bool


def open_call(
    session: Session,
    keyring: Keyring,
    *,
    dialled: str,
    caller_number: str | None,
    provider_sid: str | None = None,
    started_at: dt.datetime | None = None,
) -> OpenedCall:
    """An incoming call: the dialled number selects the account (the context switches to it)."""
    require_trained(session, ctx_of(session))
    account, did = account_for_did(session, normalize.phone_e164(dialled, keyring.region))
    ctx = ctx_of(session)
    if ctx.account_id is not None and ctx.account_id != account.id:
        raise NotFound("this number is not assigned to your account")
    switch_account(session, account.id)
    mandate_row, mandate = mandate_version(session, account.id)
    caller: Caller | None = None
    known = False
    if caller_number:
        matches = subjects.find(session, keyring, phone=caller_number)
        if matches:
            caller, known = matches[0], True
    if caller is None:
        caller, _ = subjects.register(session, keyring, subjects.Identity(phone=caller_number))
    call = Call(
        id=uuid.uuid4(),
        account_id=account.id,
        caller_id=caller.id,
        did_id=did.id,
        mandate_id=mandate_row.id,
        provider_sid=provider_sid,
        started_at=started_at or utcnow(),
        notice_version=mandate.notice_version,
    )
    if caller_number:
        cipher = keyring.cipher(session, account.id, caller.id)
        e164 = normalize.phone_e164(caller_number, keyring.region)
        call.from_sealed = cipher.seal_text("calls", "from", call.id, e164)
    session.add(call)
    session.flush()
    audit.record(
        session,
        "call.open",
        "call",
        call.id,
        subject_id=caller.id,
        details={"known_caller": known, "mandate_version": mandate_row.version},
    )
    return OpenedCall(call, account, mandate, caller, known)


def get_call(session: Session, call_id: uuid.UUID) -> Call:
    call = session.get(Call, call_id)
    if call is None or call.account_id != ctx_of(session).account_id:
        raise NotFound("no such call")
    return call


def answer(session: Session, call: Call, *, at: dt.datetime | None = None) -> None:
    ctx = ctx_of(session)
    call.status = "in-progress"
    call.answered_at = at or utcnow()
    call.operator_id = ctx.actor_id
    outcomes.settle(call)
    audit.record(session, "call.answer", "call", call.id, subject_id=call.caller_id)
    presence.call_answered(session, call, call.answered_at)


def mark_notice_read(session: Session, call: Call, *, at: dt.datetime | None = None) -> None:
    """The operator read the layer-1 notice: the call keeps which version was read."""
    call.notice_read_at = at or utcnow()
    audit.record(
        session, "call.notice_read", "call", call.id, details={"notice": call.notice_version}
    )


def complete(session: Session, call: Call, *, at: dt.datetime | None = None) -> None:
    call.status = "completed"
    call.ended_at = at or utcnow()
    outcomes.settle(call)
    audit.record(session, "call.complete", "call", call.id)
    presence.call_completed(session, call, call.ended_at)


def recent(session: Session, *, limit: int = 50, offset: int = 0) -> list[Call]:
    """Calls of the context's account, newest first (the call log; nothing opened)."""
    account_id = ctx_of(session).require_account()
    return list(
        session.scalars(
            select(Call)
            .where(Call.account_id == account_id)
            .order_by(Call.started_at.desc(), Call.id)
            .limit(min(limit, 200))
            .offset(offset)
        )
    )


def ringing(session: Session) -> list[Call]:
    """Calls of the context's account waiting for an operator."""
    account_id = ctx_of(session).require_account()
    return list(
        session.scalars(
            select(Call)
            .where(
                Call.account_id == account_id,
                Call.status == "ringing",
                Call.outcome.is_(None),
            )
            .order_by(Call.started_at)
        )
    )


def screen_pop(session: Session, keyring: Keyring, call: Call) -> dict[str, object]:
    """What the operator sees when the call pops: the account, its greeting and layer-1
    notice, the purposes, the recording policy and — for a known caller — who it is (an
    audited read, refused while the caller's data is restricted)."""
    from permanence.accounts.service import get_account, mandate_by_id
    from permanence.errors import PermissionDenied

    require_trained(session, ctx_of(session))
    account = get_account(session, call.account_id)
    _row, mandate = mandate_by_id(session, call.mandate_id)
    caller: dict[str, object] | None = None
    restricted = False
    if call.caller_id is not None:
        subject = subjects.get(session, call.caller_id)
        if subject.name_sealed is not None:
            try:
                ident = subjects.identity(session, keyring, subject)
                caller = {
                    "id": str(subject.id),
                    "first_name": ident.first_name,
                    "last_name": ident.last_name,
                    "phone": ident.phone,
                    "email": ident.email,
                }
            except PermissionDenied:
                restricted = True
    return {
        "call_id": str(call.id),
        "account": {"id": str(account.id), "slug": account.slug, "name": account.name},
        "status": call.status,
        "notice": {
            "version": mandate.notice_version,
            "layer1_fr": mandate.notice.layer1_fr,
            "layer1_en": mandate.notice.layer1_en,
            "recording_fr": mandate.notice.recording_fr if mandate.recording.enabled else None,
            "read_at": call.notice_read_at.isoformat() if call.notice_read_at else None,
            # The language the caller chose (the IVR's English key), and the full notice sent
            # by SMS: when, and which mandate version's.
            "language": call.language,
            "sms_sent_at": call.notice_sms_at.isoformat() if call.notice_sms_at else None,
            "sms_version": call.notice_sms_version,
        },
        "recording": {
            "enabled": mandate.recording.enabled,
            "objection_key": mandate.recording.objection_key,
        },
        "purposes": [
            {"code": p.code, "label_fr": p.label_fr, "label_en": p.label_en}
            for p in mandate.purposes
        ],
        "caller": caller,
        "caller_restricted": restricted,
    }


@dataclass(frozen=True)
class QueuedCall:
    """A ringing call as the queue shows it: no personal data, only where and since when."""

    call_id: uuid.UUID
    account_id: uuid.UUID
    account_name: str
    started_at: dt.datetime
    number_shown: bool
    # A priority account (health: a medical practice's calls may not wait, or an account
    # flagged ``priority`` where the schema has it): listed first and marked in the queue.
    priority: bool = False


def is_priority(account: Account) -> bool:
    return account.kind.value == "medical" or bool(getattr(account, "priority", False))


def each_active_account(session: Session) -> list[Account]:
    """The active accounts (the console's per-account views)."""
    return _each_account(session)


def _each_account(session: Session) -> list[Account]:
    from permanence.accounts.service import list_accounts

    return [a for a in list_accounts(session) if a.status.value == "active"]


def ringing_everywhere(session: Session) -> list[QueuedCall]:
    """The staff queue: ringing calls of every active account, priority accounts first, then
    oldest first.

    Reads each account under its own context (row-level security on PostgreSQL); the
    session's context is left on the last account, so use a session of its own.
    """
    queue: list[QueuedCall] = []
    for account in _each_account(session):
        switch_account(session, account.id)
        for call in ringing(session):
            queue.append(
                QueuedCall(
                    call.id,
                    account.id,
                    account.name,
                    call.started_at,
                    call.from_sealed is not None,
                    is_priority(account),
                )
            )
    return sorted(queue, key=lambda q: (not q.priority, q.started_at))


@dataclass(frozen=True)
class HandledCall:
    call: Call
    account_name: str


def handled_by(session: Session, operator_id: uuid.UUID, *, limit: int = 10) -> list[HandledCall]:
    """The operator's own recent calls across accounts, newest first (metadata only)."""
    found: list[HandledCall] = []
    for account in _each_account(session):
        switch_account(session, account.id)
        rows = session.scalars(
            select(Call)
            .where(Call.account_id == account.id, Call.operator_id == operator_id)
            .order_by(Call.answered_at.desc())
            .limit(limit)
        )
        found.extend(HandledCall(c, account.name) for c in rows)
    found.sort(key=lambda h: h.call.answered_at or h.call.started_at, reverse=True)
    return found[:limit]
