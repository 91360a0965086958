"""The clock (Art. 12(3)): extensions, waiting for information, reminders of due requests."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.crypto.keyring import Keyring
from permanence.db import ctx_of, utcnow
from permanence.errors import Conflict, ValidationFailed
from permanence.mail import Mail
from permanence.rights import clock, texts
from permanence.rights.base import EXECUTORS, Outbox, _check_role, _open_request
from permanence.rights.intake import _current_mandate
from permanence.rights.letters import tell_requester
from permanence.rights.model import OPEN_STATES, LetterKind, RightsRequest, State


def extend(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    request_id: uuid.UUID,
    reason: str,
    *,
    now: dt.datetime | None = None,
) -> tuple[RightsRequest, str, str]:
    """Extend by two further months (Art. 12(3)): once, before the first due date, with a
    reason sent to the requester. Returns the request, the letter and the channel used."""
    _check_role(session, EXECUTORS, "extend the time to answer")
    req = _open_request(session, request_id)
    if reason not in texts.EXTENSION_REASONS_FR:
        raise ValidationFailed(
            "reason must be one of: " + ", ".join(sorted(texts.EXTENSION_REASONS_FR))
        )
    now = now or utcnow()
    refused = clock.can_extend(req.received_at, req.first_due_at, req.extended_at is not None, now)
    if refused == "already_extended":
        raise Conflict("the time to answer was already extended once")
    if refused == "first_period_over":
        raise Conflict("an extension must be decided before the first due date")
    req.due_at = clock.due_at(req.received_at, clock.EXTENDED_PERIOD_MONTHS)
    req.extended_at, req.extension_reason = now, reason
    letter = texts.extension_letter(
        req.kind,
        reason,
        clock.local_day(req.due_at).strftime("%d/%m/%Y"),
        clock.local_day(req.first_due_at).strftime("%d/%m/%Y"),
    )
    channel = tell_requester(session, keyring, outbox, req, letter, kind=LetterKind.EXTENSION)
    audit.record(
        session,
        "rights.extend",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={"reason": reason, "due": req.due_at.date().isoformat()},
    )
    return req, letter, channel


def wait_for_information(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    request_id: uuid.UUID,
    reason: str,
    *,
    now: dt.datetime | None = None,
) -> tuple[RightsRequest, str, str]:
    """Ask the requester for more (Art. 12(6)); the request waits. The due date stays: the
    controller must still answer in time, or refuse for lack of verification."""
    _check_role(session, EXECUTORS, "ask the requester for more information")
    req = _open_request(session, request_id)
    if reason not in texts.WAITING_REASONS_FR:
        raise ValidationFailed(
            "reason must be one of: " + ", ".join(sorted(texts.WAITING_REASONS_FR))
        )
    req.state, req.waiting_reason, req.waiting_since = (
        State.WAITING_INFO.value,
        reason,
        now or utcnow(),
    )
    letter = texts.waiting_letter(reason)
    channel = tell_requester(session, keyring, outbox, req, letter, kind=LetterKind.WAITING)
    audit.record(
        session,
        "rights.wait",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={"reason": reason},
    )
    return req, letter, channel


@dataclass(frozen=True)
class DueReminder:
    request_id: uuid.UUID
    account_id: uuid.UUID
    kind: str
    due_at: dt.datetime
    days_left: int


def due_soon(session: Session, now: dt.datetime, days: int = 7) -> list[DueReminder]:
    """Open requests of the context's account due within ``days`` days, or overdue."""
    account_id = ctx_of(session).require_account()
    rows = session.scalars(
        select(RightsRequest)
        .where(
            RightsRequest.account_id == account_id,
            RightsRequest.state.in_([s.value for s in OPEN_STATES]),
            RightsRequest.due_at <= clock.end_of_day(clock.local_day(now) + dt.timedelta(days)),
        )
        .order_by(RightsRequest.due_at)
    )
    return [
        DueReminder(r.id, r.account_id, r.kind, r.due_at, clock.days_left(r.due_at, now))
        for r in rows
    ]


def overdue_count(session: Session, now: dt.datetime) -> int:
    account_id = ctx_of(session).require_account()
    return int(
        session.scalar(
            select(func.count())
            .select_from(RightsRequest)
            .where(
                RightsRequest.account_id == account_id,
                RightsRequest.state.in_([s.value for s in OPEN_STATES]),
                RightsRequest.due_at < now,
            )
        )
        or 0
    )


def send_reminders(
    session: Session, outbox: Outbox, now: dt.datetime, *, send: bool
) -> list[DueReminder]:
    """Remind the account's rights contact (from the mandate) of requests due within 7 days
    or overdue, at most once a day per request. The e-mail names no person."""
    due = due_soon(session, now, clock.REMINDER_WINDOW_DAYS)
    if not send or not due:
        return due
    _row, mandate = _current_mandate(session)
    contact = mandate.controller.rights_contact
    out: list[DueReminder] = []
    for item in due:
        req = session.get(RightsRequest, item.request_id)
        assert req is not None
        if req.reminded_at is not None and now - req.reminded_at < dt.timedelta(hours=20):
            continue
        if outbox.mailer is not None and "@" in contact:
            state = "en retard" if item.days_left < 0 else f"à rendre dans {item.days_left} jour(s)"
            outbox.mailer.send(
                Mail(
                    to=contact,
                    subject="Demande d'exercice de droits : échéance proche",
                    text=(
                        f"Une demande {texts.KIND_FR[item.kind]} est {state} "
                        f"(échéance le {clock.local_day(item.due_at).strftime('%d/%m/%Y')}). "
                        f"Référence : {item.request_id}. Traitez-la depuis votre espace client."
                    ),
                )
            )
        req.reminded_at = now
        audit.record(
            session,
            "rights.remind",
            "rights_request",
            req.id,
            details={"days_left": item.days_left},
        )
        out.append(item)
    return out
