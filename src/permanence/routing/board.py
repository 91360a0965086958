"""The queue on the live board: each call in the queue and where it is (waiting, ringing at
an operator's line, talking to an operator), with how long. No personal data: the account,
the operator's name (staff data, shown to supervisors) and durations."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account
from permanence.routing.model import QueueEntry
from permanence.staff.model import User

# The state as the board says it (French first, English for the API's readers).
LABELS = {
    "queued": ("en attente", "queued"),
    "offered": ("sonne chez {name}", "ringing at {name}"),
    "connected": ("en conversation avec {name}", "talking to {name}"),
}


def live_calls(session: Session, now: dt.datetime) -> list[dict[str, Any]]:
    """Calls in the queue or just taken from it, oldest first (index ix_call_queue_waiting)."""
    rows = session.execute(
        select(QueueEntry, Account.name, User.display_name)
        .join(Account, Account.id == QueueEntry.account_id)
        .outerjoin(User, User.id == QueueEntry.operator_id)
        .where(QueueEntry.state.in_(tuple(LABELS)))
        .order_by(QueueEntry.priority.desc(), QueueEntry.enqueued_at)
    ).all()
    out = []
    for entry, account, operator in rows:
        since = {
            "queued": entry.enqueued_at,
            "offered": entry.offered_at,
            "connected": entry.connected_at,
        }[entry.state] or entry.enqueued_at
        fr, en = LABELS[entry.state]
        out.append(
            {
                "call_id": str(entry.call_id),
                "account": account,
                "state": entry.state,
                "operator": operator,
                "label_fr": fr.format(name=operator or "?"),
                "label_en": en.format(name=operator or "?"),
                "priority": bool(entry.priority),
                "waited_s": max(0, round((now - entry.enqueued_at).total_seconds())),
                "since_s": max(0, round((now - since).total_seconds())),
            }
        )
    return out
