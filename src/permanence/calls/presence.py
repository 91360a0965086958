"""Operator presence: free, on a call, wrapping up, on a break — and the per-operator daily
aggregates that follow from it (calls handled, talk time, wrap-up time).

Operators set ``free``, ``break`` and ``offline`` themselves; answering a call makes them
``on_call`` and completing it ``wrap_up`` (hooks called by ``calls.service``). Wrap-up time
is the time from the end of a call to the operator's next ``free``. Only the current state is
kept, and changes are deliberately *not* written to the audit log: that log is permanent,
and a permanent trail of each employee's minutes is what
the CNIL forbids. The daily aggregates are purged after the staff retention period.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from permanence.calls.model import Call
from permanence.calls.presence_model import MANUAL_STATES, OperatorDailyStats, OperatorPresence
from permanence.context import Role
from permanence.db import ctx_of, utcnow
from permanence.errors import PermissionDenied, ValidationFailed
from permanence.render import paris_date

ANSWERING_ROLES = frozenset({Role.OPERATOR, Role.SUPERVISOR})


def _daily(session: Session, user_id: uuid.UUID, day: dt.date) -> OperatorDailyStats:
    row = session.get(OperatorDailyStats, (user_id, day))
    if row is None:
        row = OperatorDailyStats(
            user_id=user_id, day=day, calls_handled=0, talk_s=0, wrap_ups=0, wrap_up_s=0
        )
        session.add(row)
        session.flush()
    return row


def _move(
    session: Session,
    user_id: uuid.UUID,
    state: str,
    at: dt.datetime,
    call_id: uuid.UUID | None = None,
) -> OperatorPresence:
    """Change the state; going from ``wrap_up`` to ``free`` adds the wrap-up to that day's
    aggregate. A wrap-up left any other way (the next call answered, a break) is not counted:
    a state forgotten for hours must not pass for work."""
    row = session.get(OperatorPresence, user_id)
    if row is None:
        row = OperatorPresence(user_id=user_id, state=state, since=at, call_id=call_id)
        session.add(row)
        session.flush()
        return row
    if row.state == "wrap_up" and state == "free" and at >= row.since:
        daily = _daily(session, user_id, paris_date(row.since))
        daily.wrap_ups += 1
        daily.wrap_up_s += round((at - row.since).total_seconds())
    row.state = state
    row.since = at
    if call_id is not None or state in MANUAL_STATES:
        row.call_id = call_id
    session.flush()
    return row


def move(
    session: Session,
    user_id: uuid.UUID,
    state: str,
    at: dt.datetime,
    call_id: uuid.UUID | None = None,
) -> OperatorPresence:
    """The queue's hooks (``permanence.routing``): a call offered, taken or let ring out
    moves its operator, whoever the webhook's context is."""
    return _move(session, user_id, state, at, call_id)


def set_state(session: Session, state: str, *, at: dt.datetime | None = None) -> OperatorPresence:
    """The signed-in operator (or supervisor) says what they are doing."""
    ctx = ctx_of(session)
    if ctx.role not in ANSWERING_ROLES or ctx.actor_id is None:
        raise PermissionDenied("only operators and supervisors have a presence state")
    if state not in MANUAL_STATES:
        raise ValidationFailed(
            "state must be one of: " + ", ".join(sorted(MANUAL_STATES)),
        )
    return _move(session, ctx.actor_id, state, at or utcnow())


def current(session: Session) -> OperatorPresence | None:
    ctx = ctx_of(session)
    if ctx.actor_id is None:
        return None
    return session.get(OperatorPresence, ctx.actor_id)


def call_answered(session: Session, call: Call, at: dt.datetime) -> None:
    """Hook: the call's operator is now on this call."""
    if call.operator_id is None or ctx_of(session).role not in ANSWERING_ROLES:
        return
    _move(session, call.operator_id, "on_call", at, call.id)


def call_completed(session: Session, call: Call, at: dt.datetime) -> None:
    """Hook: count the call for its operator, and start their wrap-up."""
    if call.operator_id is None or call.answered_at is None:
        return
    talk = call.talk_s if call.talk_s is not None else (at - call.answered_at).total_seconds()
    daily = _daily(session, call.operator_id, paris_date(at))
    daily.calls_handled += 1
    daily.talk_s += max(0, round(talk))
    row = session.get(OperatorPresence, call.operator_id)
    # Only the call the operator is on moves them to wrap-up (not an old call closed late).
    if row is None or (row.state == "on_call" and row.call_id in (None, call.id)):
        _move(session, call.operator_id, "wrap_up", at, call.id)
    else:
        session.flush()
