"""The walk's quick test (audit/chain.py, ADR 0042): for an entry whose columns all match
its hashed body, whatever form the database driver returns them in, the walk never falls
back to the column-by-column check; for one whose column differs, it always does. The
fallback gives the same verdict, only slower: a quick test that fails on clean rows would
cost every entry the slow path (issue 24's 300k entries/s) without any other test seeing it.
Standalone: no conftest, no database."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from permanence.audit import chain
from permanence.audit.model import GENESIS_HASH

ACTOR = uuid.UUID("0b4c8a2e-5f1d-4e3a-9c7b-2d6e8f0a1b3c")
SUBJECT = uuid.UUID("7e9d1c3b-2a4f-4b6d-8e0c-1f3a5b7d9e2f")
ACCOUNT = uuid.UUID("4a6c8e0b-1d3f-4a5c-9e7b-0d2f4a6c8e1b")
AT = dt.datetime(2027, 1, 4, 9, 30, 15, 123456, tzinfo=dt.UTC)
PARIS = dt.timezone(dt.timedelta(hours=1))


def body(at: dt.datetime, actor: uuid.UUID | None, subject: uuid.UUID | None) -> str:
    """An entry's body as audit.record writes it (sorted keys, no spaces)."""
    return json.dumps(
        {
            "action": "message.read",
            "actor": str(actor) if actor else None,
            **({"actor_kind": "user"} if actor else {}),
            "account": str(ACCOUNT),
            "details": {"fields": 3},
            "object": "message:1",
            "reason": "portal:inbox",
            "role": "client",
            "subject": str(subject) if subject else None,
            "ts": at.isoformat(),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )


def rows(
    count: int,
    actor: Callable[[int], Any],
    subject: Callable[[int], Any],
    ts: Callable[[dt.datetime], Any],
) -> list[tuple[Any, ...]]:
    """``count`` chained rows in walk()'s column order, the columns in a driver's forms."""
    out, prev = [], GENESIS_HASH
    for seq in range(1, count + 1):
        at = AT + dt.timedelta(seconds=seq)
        a = ACTOR if seq % 2 else None
        s = SUBJECT if seq % 3 else None
        text = body(at, a, s)
        digest = hashlib.sha256(bytes.fromhex(prev) + seq.to_bytes(8, "big") + text.encode())
        out.append(
            (seq, text, prev, digest.hexdigest(), "message.read", actor(seq), subject(seq), ts(at))
        )
        prev = digest.hexdigest()
    return out


def _sqlite_ts(at: dt.datetime) -> str:
    return at.replace(tzinfo=None).isoformat(sep=" ")  # SQLite: naive UTC text


FORMS: dict[str, dict[str, Callable[..., Any]]] = {
    "sqlite": {  # uuids as 32 hex digits, ts as naive UTC text
        "actor": lambda seq: ACTOR.hex if seq % 2 else None,
        "subject": lambda seq: SUBJECT.hex if seq % 3 else None,
        "ts": _sqlite_ts,
    },
    "postgresql": {  # UUID objects, ts aware (in the session's time zone: here Paris)
        "actor": lambda seq: ACTOR if seq % 2 else None,
        "subject": lambda seq: SUBJECT if seq % 3 else None,
        "ts": lambda at: at.astimezone(PARIS),
    },
    "naive datetime": {  # a driver giving naive UTC datetimes, uuids as text with dashes
        "actor": lambda seq: str(ACTOR) if seq % 2 else None,
        "subject": lambda seq: str(SUBJECT) if seq % 3 else None,
        "ts": lambda at: at.replace(tzinfo=None),
    },
}


def walk(chain_rows: list[tuple[Any, ...]]) -> tuple[chain.Walk, int, list[int]]:
    asked: list[int] = []

    def differing(seq: int) -> str | None:
        asked.append(seq)
        return "subject_id"

    w = chain.Walk(0, GENESIS_HASH, {3})
    seen = chain.walk(w, chain_rows, differing)
    return w, seen, asked


@pytest.mark.parametrize("form", sorted(FORMS))
def test_clean_entries_pass_the_quick_test_in_every_drivers_form(form: str) -> None:
    f = FORMS[form]
    w, seen, asked = walk(rows(12, f["actor"], f["subject"], f["ts"]))
    assert (w.failure, seen, w.count, w.last, w.expected) == (None, 12, 12, 12, 13)
    assert asked == []  # not one entry fell back to the column-by-column check
    assert set(w.hashes_at) == {3}


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize(
    ("column", "value"),
    [
        (4, "message.write"),  # the action
        (5, uuid.UUID(int=5)),  # the actor
        (6, uuid.UUID(int=6)),  # the subject
        (7, AT + dt.timedelta(days=1)),  # the time
    ],
)
def test_an_entry_whose_column_differs_is_checked_column_by_column(
    form: str, column: int, value: Any
) -> None:
    f = FORMS[form]
    chain_rows = rows(6, f["actor"], f["subject"], f["ts"])
    changed = list(chain_rows[3])
    if column == 7:
        value = f["ts"](value)
    elif column in (5, 6):
        value = {"sqlite": value.hex, "naive datetime": str(value)}.get(form, value)
    changed[column] = value
    chain_rows[3] = tuple(changed)
    w, seen, asked = walk(chain_rows)
    assert asked == [4]
    assert w.failure == (4, "column subject_id differs from the hashed body", "subject_id")
    assert (seen, w.count, w.last) == (4, 3, 3)


# A quote or a backslash (a body holds them escaped); not text at all (NULL, or a number, which
# SQLite's columns take whatever their type).
@pytest.mark.parametrize("action", ['message"read', "message\\read", None, 5])
def test_an_action_no_canonical_body_holds_is_checked_column_by_column(action: object) -> None:
    """No lead to look for in the body: the entry falls back to the column-by-column check
    (without raising), which finds the column different; it does not pass for want of a
    lead to find."""
    f = FORMS["sqlite"]
    chain_rows = rows(6, f["actor"], f["subject"], f["ts"])
    changed = list(chain_rows[3])
    changed[4] = action
    chain_rows[3] = tuple(changed)
    w, _, asked = walk(chain_rows)
    assert asked == [4]
    assert w.failure == (4, "column subject_id differs from the hashed body", "subject_id")


class _Text(str):
    """A time read as text, but not of type ``str`` (a driver's own string type)."""


def test_a_time_in_another_type_is_read_as_text_or_checked_column_by_column() -> None:
    """``_iso_utc``'s last branch: a time column that is neither ``str`` nor a datetime. Text
    of another string type is read as SQLite's text (the quick test passes); anything else
    (NULL here) cannot be the body's time, and is checked column by column, without raising."""
    f = FORMS["sqlite"]
    as_text = rows(6, f["actor"], f["subject"], lambda at: _Text(_sqlite_ts(at)))
    w, _, asked = walk(as_text)
    assert (w.failure, w.count, asked) == (None, 6, [])
    chain_rows = rows(6, f["actor"], f["subject"], f["ts"])
    chain_rows[3] = (*chain_rows[3][:7], None)
    w, seen, asked = walk(chain_rows)
    assert asked == [4]
    assert (w.failure, seen) == (
        (4, "column subject_id differs from the hashed body", "subject_id"),
        4,
    )


@pytest.mark.parametrize(("held", "kept"), [(1, 1), (100_000, 100_000), (100_001, 0)])
def test_the_leads_remembered_are_kept_up_to_a_hundred_thousand(held: int, kept: int) -> None:
    """What the quick test builds per (action, actor) is remembered from batch to batch, up to
    100,000 pairs: past that, the next batch starts afresh (a chain of millions of entries by
    as many actors does not hold them all in memory)."""
    w = chain.Walk(0, GENESIS_HASH, set())
    w.leads.update(
        {("message.read", n): f'"action":"message.read","actor":"{n}",' for n in range(held)}
    )
    assert chain.walk(w, [], lambda seq: None) == 0
    assert len(w.leads) == kept
    f = FORMS["sqlite"]
    chain.walk(w, rows(2, f["actor"], f["subject"], f["ts"]), lambda seq: None)
    assert len(w.leads) == kept + 2  # (message.read, the actor) and (message.read, None)


def test_the_second_process_imports_only_what_it_needs() -> None:
    """It starts for every long chain verified (ADR 0042): run as the script it is, it imports
    neither typing nor what only the first process needs (subprocess, json, re), whose
    imports would almost double its start. (Here it fails at once: no such file.)"""
    arguments = ["/nonexistent", "0", "1", GENESIS_HASH, "5"]
    ran = subprocess.run(
        [sys.executable, "-I", "-S", "-X", "importtime", chain.__file__, *arguments],
        input=b"",
        capture_output=True,
        check=False,
    )
    imported = {
        line.split("|")[-1].strip()
        for line in ran.stderr.decode().splitlines()
        if line.startswith("import time:")
    }
    assert ran.returncode == 1 and {"sqlite3", "hashlib", "datetime"} <= imported
    assert not imported & {"typing", "subprocess", "json", "re"}


def test_the_walk_stops_reading_at_a_gap() -> None:
    """Entry 3 missing: the fault is named at 3, and no row after the one that showed the gap
    is read (the walk stops at its first fault, and says how many rows it read)."""
    f = FORMS["sqlite"]
    chain_rows = rows(6, f["actor"], f["subject"], f["ts"])
    del chain_rows[2]
    w, seen, asked = walk(chain_rows)
    assert w.failure == (3, "entry missing (gap in sequence)", "seq")
    assert (seen, w.count, w.last, w.expected, asked) == (3, 2, 2, 3, [])


def _single(fields: dict[str, Any], action: Any, actor: Any, subject: Any) -> list[Any]:
    """Entry 1 with the body ``fields`` (canonical: sorted keys, compact, ASCII), the given
    columns, and the time of the body in SQLite's form."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = hashlib.sha256(bytes.fromhex(GENESIS_HASH) + (1).to_bytes(8, "big") + text.encode())
    ts = _sqlite_ts(dt.datetime.fromisoformat(fields["ts"]))
    return [(1, text, GENESIS_HASH, digest.hexdigest(), action, actor, subject, ts)]


def _fields(
    action: str, actor: str | None, subject: str | None, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "account": None,
        "action": action,
        "actor": actor,
        "details": details or {},
        "role": "agent",
        "subject": subject,
        "ts": AT.isoformat(),
    }


def test_clean_entries_with_ids_that_need_escaping_pass_the_quick_test() -> None:
    """An id column holding text other than a uuid (never written by the application, but a
    column holds what it is given): the quick test looks for it escaped as the body holds it,
    and takes only 32 characters for SQLite's uuid without dashes."""
    cases = [("é", "a\\b"), ('a"b', "ü"), (str(ACTOR), "x"), (None, "f" * 31), (None, "f" * 33)]
    for actor, subject in cases:
        w, _, asked = walk(_single(_fields("x.y", actor, subject), "x.y", actor, subject))
        assert (w.failure, asked) == (None, []), (actor, subject)


@pytest.mark.parametrize(
    ("action", "actor", "subject", "columns"),
    [
        # the column holds the JSON escape of the body's text: never taken for it
        ("message\tread", str(ACTOR), None, ("message\\tread", ACTOR.hex, None)),
        ("message.read", "a\b", None, ("message.read", "a\\b", None)),
        ("message.read", None, "a\b", ("message.read", None, "a\\b")),
        ("message.read", "a\u00e9", None, ("message.read", "a\\u00e9", None)),
    ],
)
def test_a_column_holding_the_bodys_text_escaped_is_not_taken_for_it(
    action: str, actor: str | None, subject: str | None, columns: tuple[Any, ...]
) -> None:
    w, _, asked = walk(_single(_fields(action, actor, subject), *columns))
    assert asked == [1]
    assert w.failure == (1, "column subject_id differs from the hashed body", "subject_id")


def test_the_action_and_actor_are_looked_for_before_the_details() -> None:
    """The body's details hold the text the columns' action and actor would have at the top
    level (a user's input can), while the top-level action is another: the quick test does
    not take the copy in the details for them."""
    lead = {"action": "message.read", "actor": str(ACTOR), "z": 1}
    fields = _fields("message.write", str(ACTOR), None, lead)
    assert f'"details":{{"action":"message.read","actor":"{ACTOR}",' in json.dumps(
        fields, sort_keys=True, separators=(",", ":")
    )
    w, _, asked = walk(_single(fields, "message.read", ACTOR.hex, None))
    assert asked == [1]
    assert w.failure == (1, "column subject_id differs from the hashed body", "subject_id")
