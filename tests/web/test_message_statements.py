"""Issue 24: the SQL a message costs through the API, pinned.

Taking a message reads the call, its caller, the call's mandate version and the caller's key
in one statement (messages.service.call_for_record), then the audit chain's head; it writes
the message (one Core INSERT, ADR 0040), its delivery ledger, history and escalation, the
hour's aggregate, the audit entries and the head. A change that adds a statement to this path
fails here: say why in the same change, and update the count and docs/performance.md."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event, func, select

from permanence.context import AccessContext
from permanence.messages.model import Message
from tests.web.conftest import World

PLUMBER_DID = "+33240000001"
BODY = {
    "purpose": "intervention",
    "values": {
        "last_name": "Martin",
        "phone": "01 99 00 12 34",
        "address": "3 rue des Lilas, 44000 Nantes",
        "urgency": "à planifier",
        "description": "Fuite sous l'évier",
    },
}


def _statements(world: World, fn: Any) -> list[str]:
    """Each statement run while ``fn`` runs: its verb and the tables it names."""
    seen: list[str] = []

    def record(_conn: Any, _cur: Any, stmt: str, *_a: Any) -> None:
        verb = stmt.split(None, 1)[0].upper()
        tables = re.findall(r"\b(?:FROM|JOIN|INTO|UPDATE)\s+(?!SET\b)(\w+)", stmt, re.IGNORECASE)
        seen.append(" ".join([verb, *dict.fromkeys(t.lower() for t in tables)]))

    engine = world.rt.db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_a_message_through_the_api_costs_ten_statements(world: World) -> None:
    op = world.login(world.operator)
    r = op.post("/api/v1/calls", json={"dialled": PLUMBER_DID, "caller_number": "0199001234"})
    assert r.status_code == 201, r.text
    url = f"/api/v1/accounts/{world.plumber.id}/calls/{r.json()['id']}/messages"
    assert op.post(url, json=BODY).status_code == 201  # the session check is remembered after

    answers: list[Any] = []
    seen = _statements(world, lambda: answers.append(op.post(url, json=BODY)))

    assert answers[0].status_code == 201, answers[0].text
    # The order of the writes at commit (aggregates, audit) is not the point: the set is.
    # SQLite: BEGIN IMMEDIATE; PostgreSQL: the row-level security setting (set_config).
    opening = "SELECT" if world.rt.db.is_postgres else "BEGIN"
    assert sorted(seen) == sorted(
        [
            opening,
            "SELECT calls callers mandates subject_keys",  # one statement, not four
            "INSERT messages",
            "SELECT audit_head",
            "INSERT deliveries",
            "INSERT delivery_events",
            "INSERT escalations",
            "INSERT account_hourly_stats",
            "INSERT audit_log",
            "UPDATE audit_head",
        ]
    )
    with world.rt.db.session(AccessContext.system("test", world.plumber.id), readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 2
