"""The live board: calls waiting per account, signed-in staff and their state, the last
hour's calls (supervisors and administrators)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, literal, select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account
from permanence.calls.model import Call
from permanence.calls.presence_model import OperatorPresence
from permanence.context import Role
from permanence.db import acting_for, ctx_of, utcnow
from permanence.errors import PermissionDenied
from permanence.staff.auth import IDLE_TIMEOUT
from permanence.staff.model import User, WebSession
from permanence.stats.sql import ANSWERED, MISSED, count_if

BOARD_READERS = frozenset({Role.SUPERVISOR, Role.ADMIN, Role.SYSTEM})
# A call still "ringing" after this long lost its status callback: it is not waiting.
STALE_WAIT = dt.timedelta(hours=1)


@dataclass
class AccountBoard:
    account_id: uuid.UUID
    slug: str
    name: str
    waiting: list[int]  # seconds each waiting call has waited, longest first
    answered_last_hour: int
    missed_last_hour: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": str(self.account_id),
            "slug": self.slug,
            "name": self.name,
            "waiting": len(self.waiting),
            "waiting_s": self.waiting,
            "longest_wait_s": self.waiting[0] if self.waiting else None,
            "answered_last_hour": self.answered_last_hour,
            "missed_last_hour": self.missed_last_hour,
        }


@dataclass
class OperatorBoard:
    user_id: uuid.UUID
    display_name: str
    role: str
    state: str
    since_s: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": str(self.user_id),
            "display_name": self.display_name,
            "role": self.role,
            "state": self.state,
            "since_s": self.since_s,
        }


@dataclass
class Board:
    at: dt.datetime
    accounts: list[AccountBoard]
    operators: list[OperatorBoard]
    # Calls in the provider's queue and where each is (permanence.routing.board).
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def waiting(self) -> int:
        return sum(len(a.waiting) for a in self.accounts)

    def as_dict(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for o in self.operators:
            states[o.state] = states.get(o.state, 0) + 1
        return {
            "at": self.at.isoformat(),
            "waiting": self.waiting,
            "answered_last_hour": sum(a.answered_last_hour for a in self.accounts),
            "missed_last_hour": sum(a.missed_last_hour for a in self.accounts),
            "operators_by_state": states,
            "accounts": [a.as_dict() for a in self.accounts],
            "operators": [o.as_dict() for o in self.operators],
            "calls": self.calls,
        }


def board(session: Session, *, now: dt.datetime | None = None) -> Board:
    """Calls waiting per account, signed-in staff and their state, the last hour's calls."""
    ctx = ctx_of(session)
    if ctx.role not in BOARD_READERS:
        raise PermissionDenied("the live board is for supervisors")
    now = now or utcnow()
    hour_ago = now - dt.timedelta(hours=1)
    waiting_c = and_(
        Call.status.in_(("queued", "ringing")),
        Call.outcome.is_(None),
        Call.started_at >= now - STALE_WAIT,
    )
    accounts = session.execute(
        select(Account.id, Account.slug, Account.name).order_by(Account.slug)
    ).all()
    out: list[AccountBoard] = []
    for account_id, slug, name in accounts:
        with acting_for(session, account_id):
            recent = and_(
                Call.account_id == account_id,
                Call.started_at >= hour_ago,
                Call.started_at <= now,
            )
            waits = session.scalars(
                select(Call.started_at).where(recent, waiting_c).order_by(Call.started_at)
            ).all()
            answered, lost = session.execute(
                select(count_if(ANSWERED), count_if(MISSED)).where(recent)
            ).one()
        out.append(
            AccountBoard(
                account_id,
                slug,
                name,
                [max(0, round((now - w).total_seconds())) for w in waits],
                int(answered),
                int(lost),
            )
        )
    live = (
        select(WebSession.user_id)
        .where(WebSession.expires_at > now, WebSession.last_seen_at >= now - IDLE_TIMEOUT)
        .distinct()
    )
    staff = session.execute(
        select(
            User.id, User.display_name, User.role, OperatorPresence.state, OperatorPresence.since
        )
        .outerjoin(OperatorPresence, OperatorPresence.user_id == User.id)
        .where(
            User.role.in_((Role.OPERATOR, Role.SUPERVISOR)),
            User.active.is_(True),
            User.id.in_(live),
            func.coalesce(OperatorPresence.state, literal("free")) != "offline",
        )
        .order_by(User.display_name)
    ).all()
    operators = [
        OperatorBoard(
            uid,
            name,
            role.value,
            state or "free",
            max(0, round((now - since).total_seconds())) if since else 0,
        )
        for uid, name, role, state, since in staff
    ]
    from permanence.routing.board import live_calls

    return Board(now, out, operators, live_calls(session, now))
