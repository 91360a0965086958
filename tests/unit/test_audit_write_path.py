"""The audit log's write path (ADR 0035), without the application: entries held in the
transaction, numbered, hashed and written at its commit (after its last flush), or before a
statement of that transaction reads or writes the audit tables; the chain head read once per
transaction; nothing written for a transaction rolled back or abandoned.

A SQLite database holds only the audit tables (and ``accounts``, for a statement that is not
the audit log's). Expected bodies are written by hand; expected hashes are computed here with
``hashlib`` over those literal bodies (sha256 of the previous hash's 32 bytes, the sequence
number as 8 bytes big-endian, the body), never through ``permanence``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    column,
    delete,
    event,
    except_,
    exists,
    func,
    insert,
    literal_column,
    select,
    text,
    union,
    union_all,
    update,
)
from sqlalchemy.orm import Session, aliased

from permanence.accounts.model import Account, AccountKind
from permanence.audit import service as audit
from permanence.audit.model import GENESIS_HASH, AuditCheckpoint, AuditEntry, AuditHead
from permanence.context import AccessContext, Role
from permanence.db import Base, Database

ACCOUNT = uuid.UUID("11111111-1111-4111-8111-111111111111")
USER = uuid.UUID("22222222-2222-4222-8222-222222222222")
SUBJECT = uuid.UUID("33333333-3333-4333-8333-333333333333")
KEY = uuid.UUID("44444444-4444-4444-8444-444444444444")
SYSTEM = AccessContext.system("test")
OPERATOR = AccessContext(Role.OPERATOR, "call.answer", actor_id=USER, account_id=ACCOUNT)
TIMES = [
    dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC),
    dt.datetime(2027, 1, 4, 9, 1, 30, 250000, tzinfo=dt.UTC),
    dt.datetime(2027, 1, 4, 9, 2, tzinfo=dt.UTC),
]
# The three entries below, as their canonical bodies (keys sorted, no spaces, ASCII).
BODIES = [
    '{"account":null,"action":"account.create","actor":null,"details":{},'
    '"object":"account:11111111-1111-4111-8111-111111111111","reason":"test","role":"system",'
    '"subject":null,"ts":"2027-01-04T09:00:00+00:00"}',
    '{"account":"11111111-1111-4111-8111-111111111111","action":"caller.read",'
    '"actor":"22222222-2222-4222-8222-222222222222","actor_kind":"user",'
    '"details":{"fields":2},"object":"caller:x","reason":"call.answer","role":"operator",'
    '"subject":"33333333-3333-4333-8333-333333333333","ts":"2027-01-04T09:01:30.250000+00:00"}',
    '{"account":"11111111-1111-4111-8111-111111111111","action":"message.create",'
    '"actor":"22222222-2222-4222-8222-222222222222","actor_kind":"user","details":{},'
    '"object":"message","reason":"call.answer","role":"operator","subject":null,'
    '"ts":"2027-01-04T09:02:00+00:00"}',
]


def _sha(prev: str, seq: int, body: str) -> str:
    return hashlib.sha256(bytes.fromhex(prev) + seq.to_bytes(8, "big") + body.encode()).hexdigest()


def _chain_of(bodies: list[str], prev: str = "00" * 32, first: int = 1) -> list[str]:
    hashes = []
    for seq, body in enumerate(bodies, start=first):
        prev = _sha(prev, seq, body)
        hashes.append(prev)
    return hashes


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'audit.db'}")
    names = ("accounts", "audit_log", "audit_head", "audit_checkpoints")
    Base.metadata.create_all(database.engine, tables=[Base.metadata.tables[n] for n in names])
    yield database
    database.dispose()


@pytest.fixture
def statements(db: Database) -> list[str]:
    """Every SQL statement sent, in order."""
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", seen)
    return sent


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    """``utcnow`` as the audit log reads it: the next of TIMES at each call."""
    times = list(TIMES)
    monkeypatch.setattr(audit, "utcnow", lambda: times.pop(0))
    return times


def _log(db: Database) -> list[tuple[Any, ...]]:
    with db.session(SYSTEM, readonly=True) as s:
        rows = s.execute(
            select(
                AuditEntry.seq,
                AuditEntry.ts,
                AuditEntry.action,
                AuditEntry.actor_id,
                AuditEntry.subject_id,
                AuditEntry.body,
                AuditEntry.prev_hash,
                AuditEntry.hash,
            ).order_by(AuditEntry.seq)
        ).all()
    return [tuple(r) for r in rows]


def _head(db: Database) -> tuple[int, str] | None:
    with db.session(SYSTEM, readonly=True) as s:
        row = s.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
    return None if row is None else (row[0], row[1])


def _first(s: Session) -> None:
    audit.record(s, "account.create", "account", ACCOUNT)


def _second(s: Session) -> None:
    audit.record(s, "caller.read", "caller", "x", subject_id=SUBJECT, details={"fields": 2})


def _third(s: Session) -> None:
    audit.record(s, "message.create", "message")


def _expected_log() -> list[tuple[Any, ...]]:
    hashes = _chain_of(BODIES)
    prevs = ["00" * 32, *hashes[:2]]
    return [
        (1, TIMES[0], "account.create", None, None, BODIES[0], prevs[0], hashes[0]),
        (2, TIMES[1], "caller.read", USER, SUBJECT, BODIES[1], prevs[1], hashes[1]),
        (3, TIMES[2], "message.create", USER, None, BODIES[2], prevs[2], hashes[2]),
    ]


# -- what is written ----------------------------------------------------------------------------


@pytest.mark.parametrize("head_row", [True, False], ids=["head row", "no head row yet"])
def test_recorded_entries_are_written_at_commit_as_known_bytes(
    db: Database, clock: list[dt.datetime], head_row: bool
) -> None:
    """The migrations start the head at (0, genesis); a log without the row starts it."""
    assert GENESIS_HASH == "00" * 32
    if head_row:
        with db.session(SYSTEM) as s:
            s.execute(insert(AuditHead).values(id=1, seq=0, hash=GENESIS_HASH))
    with db.session(SYSTEM) as s:
        _first(s)
    with db.session(OPERATOR) as s:
        _second(s)
        _third(s)
    assert _log(db) == _expected_log()
    assert _head(db) == (3, _chain_of(BODIES)[2])


def test_the_head_is_the_row_numbered_one_whatever_else_the_table_holds(
    db: Database, clock: list[dt.datetime]
) -> None:
    """Rows numbered 0 and 2 (none should exist) are neither read as the head nor moved."""
    with db.session(SYSTEM) as s:
        s.execute(
            insert(AuditHead),
            [
                {"id": 0, "seq": 7, "hash": "aa" * 32},
                {"id": 1, "seq": 0, "hash": GENESIS_HASH},
                {"id": 2, "seq": 9, "hash": "bb" * 32},
            ],
        )
    with db.session(SYSTEM) as s:
        _first(s)
    assert [r[0] for r in _log(db)] == [1]
    with db.session(SYSTEM, readonly=True) as s:
        rows = s.execute(select(AuditHead.id, AuditHead.seq, AuditHead.hash).order_by("id"))
        assert [tuple(r) for r in rows] == [
            (0, 7, "aa" * 32),
            (1, 1, _chain_of(BODIES[:1])[0]),
            (2, 9, "bb" * 32),
        ]


def test_entries_read_mid_transaction_are_written_then_and_the_rest_at_commit(
    db: Database, clock: list[dt.datetime]
) -> None:
    """Each flush continues the chain from the last: one head read, then the head as this
    transaction moved it (the head row inserted once, then moved)."""
    with db.session(OPERATOR) as s:
        audit.record(s, "account.create", "account", ACCOUNT)
        seen = s.scalars(select(AuditEntry.seq)).all()
        assert seen == [1]
        _second(s)
        assert s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)).all() == [
            "account.create",
            "caller.read",
        ]
        _third(s)
    body0 = BODIES[0].replace('"actor":null', f'"actor":"{USER}","actor_kind":"user"')
    body0 = body0.replace('"account":null', f'"account":"{ACCOUNT}"')
    body0 = body0.replace(
        '"reason":"test","role":"system"', '"reason":"call.answer","role":"operator"'
    )
    bodies = [body0, *BODIES[1:]]
    assert [r[5] for r in _log(db)] == bodies
    assert [r[7] for r in _log(db)] == _chain_of(bodies)
    assert _head(db) == (3, _chain_of(bodies)[2])


def test_the_actor_is_a_person_or_an_api_key_by_its_id_and_name(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.UTC)
    monkeypatch.setattr(audit, "utcnow", lambda: at)
    key = AccessContext(
        Role.CLIENT, "api", account_id=ACCOUNT, api_key_id=KEY, api_key_name="Clé CRM #2"
    )
    both = AccessContext(
        Role.CLIENT, "api", actor_id=USER, account_id=ACCOUNT, api_key_id=KEY, api_key_name="k"
    )
    unnamed = AccessContext(Role.CLIENT, "api", account_id=ACCOUNT, api_key_id=KEY)
    long_name = AccessContext(
        Role.CLIENT, "api", account_id=ACCOUNT, api_key_id=KEY, api_key_name="n" * 150
    )
    for ctx in (key, both, unnamed, long_name):
        with db.session(ctx) as s:
            audit.record(
                s,
                "message.read",
                "message",
                "m1",
                details={"by": SUBJECT, "n": 1.5, "ok": True, "none": None, "code": "a/b"},
            )
    details = (
        '"details":{"by":"33333333-3333-4333-8333-333333333333","code":"a/b","n":1.5,'
        '"none":null,"ok":true}'
    )
    common = f'{{"account":"{ACCOUNT}","action":"message.read",'
    tail = '"object":"message:m1","reason":"api","role":"client","subject":null,' + (
        '"ts":"2027-01-04T09:00:00+00:00"}'
    )
    by_key = f'{common}"actor":"{KEY}","actor_kind":"api_key",{details},"key_name":'
    assert [r[5] for r in _log(db)] == [
        f'{by_key}"Cl__CRM__2",{tail}',
        f'{common}"actor":"{USER}","actor_kind":"user",{details},{tail}',
        f'{by_key}"",{tail}',
        f'{by_key}"{"n" * 100}",{tail}',
    ]
    assert [r[3] for r in _log(db)] == [KEY, USER, KEY, KEY]


@pytest.mark.parametrize(
    "call",
    [
        lambda s: audit.record(s, "message read", "message"),
        lambda s: audit.record(s, "message.read", "le message"),
        lambda s: audit.record(s, "message.read", "message", details={"une clé": 1}),
        lambda s: audit.record(s, "message.read", "message", details={"who": "Jean Martin"}),
    ],
    ids=["action", "object type", "detail key", "detail value"],
)
def test_free_text_is_refused_and_nothing_is_recorded(db: Database, call: Any) -> None:
    with db.session(SYSTEM) as s, pytest.raises(ValueError, match="must be a code"):
        call(s)
    reason = AccessContext.system("pour Jean Martin")
    with pytest.raises(ValueError, match="audit reason must be a code"), db.session(reason) as s:
        audit.record(s, "message.read", "message")
    assert _log(db) == []


# -- when it is written -------------------------------------------------------------------------


def _audit_statements(sent: list[str]) -> list[str]:
    kinds = (
        "SELECT audit_head",
        "INSERT INTO audit_log",
        "UPDATE audit_head",
        "INSERT INTO audit_head",
    )
    return [k for st in sent for k in kinds if st.startswith(k)]


def test_entries_wait_for_a_statement_on_the_audit_tables_or_the_commit(
    db: Database, statements: list[str]
) -> None:
    with db.session(SYSTEM) as s:
        s.execute(insert(AuditHead).values(id=1, seq=0, hash=GENESIS_HASH))
    with db.session(OPERATOR) as s:
        statements.clear()
        _first(s)
        _second(s)
        s.add(Account(id=ACCOUNT, slug="a", name="A", kind=AccountKind.OTHER))
        s.flush()
        assert s.scalars(select(Account.slug)).all() == ["a"]
        assert _audit_statements(statements) == []  # other tables: the entries wait
        assert len(s.scalars(select(AuditEntry)).all()) == 2
        # The head read once, both entries in one INSERT, the head moved.
        assert _audit_statements(statements) == [
            "SELECT audit_head",
            "INSERT INTO audit_log",
            "UPDATE audit_head",
        ]
        _third(s)
        statements.clear()
    # At commit: the head is not read again.
    assert _audit_statements(statements) == ["INSERT INTO audit_log", "UPDATE audit_head"]
    assert [r[0] for r in _log(db)] == [1, 2, 3]
    statements.clear()
    with db.session(OPERATOR) as s:
        s.execute(update(Account).values(name="B"))
    assert _audit_statements(statements) == []  # nothing recorded: nothing written


def test_an_audit_head_loaded_in_the_transaction_is_reloaded_after_an_entry(
    db: Database,
) -> None:
    with db.session(SYSTEM) as s:
        s.execute(insert(AuditHead).values(id=1, seq=0, hash=GENESIS_HASH))
    with db.session(OPERATOR) as s:
        head = s.get(AuditHead, 1)
        assert head is not None and head.seq == 0
        _first(s)
        _second(s)
        again = s.get(AuditHead, 1)
        assert again is head and again.seq == 2
        _third(s)
        assert head.seq == 3
        assert head.hash == s.scalar(select(AuditEntry.hash).where(AuditEntry.seq == 3))


def test_a_rolled_back_transaction_writes_nothing_and_the_next_one_continues(
    db: Database,
) -> None:
    with pytest.raises(RuntimeError), db.session(OPERATOR) as s:
        _first(s)
        raise RuntimeError("boom")
    s = Session(db.engine)
    s.info["ctx"] = OPERATOR
    try:
        _first(s)
        s.rollback()
        _second(s)
        s.commit()
    finally:
        s.close()
    assert [(r[0], r[2]) for r in _log(db)] == [(1, "caller.read")]


def test_entries_of_a_transaction_abandoned_unfinished_are_never_written(db: Database) -> None:
    """A session closed without commit or rollback keeps its chain object; the next
    transaction of that session neither shows nor writes those entries."""
    s = Session(db.engine)
    s.info["ctx"] = OPERATOR
    try:
        _first(s)
        s.close()
        assert s.scalars(select(AuditEntry)).all() == []
        s.commit()
        _second(s)
        s.commit()
    finally:
        s.close()
    assert [(r[0], r[2]) for r in _log(db)] == [(1, "caller.read")]


def test_a_session_first_used_by_the_audit_log_commits_its_entries(db: Database) -> None:
    s = Session(db.engine)  # no transaction begun yet
    s.info["ctx"] = OPERATOR
    try:
        assert s.get_transaction() is None
        _first(s)
        _second(s)
        s.commit()
    finally:
        s.close()
    assert [r[2] for r in _log(db)] == ["account.create", "caller.read"]


# -- which statements are the audit tables' -----------------------------------------------------


_LOG_CTE = select(AuditEntry.actor_id).cte("c")
_AUDIT_NAMED = aliased(Account, name="audit_log")


@pytest.mark.parametrize(
    ("statement", "touches"),
    [
        (select(AuditEntry), True),
        (select(AuditHead.seq), True),
        (select(AuditCheckpoint.seq), True),
        (select(Account.id).join(AuditEntry, AuditEntry.actor_id == Account.id), True),
        (select(aliased(AuditEntry).seq), True),
        (select(select(AuditEntry.seq).subquery()), True),
        (insert(AuditEntry), True),
        (update(AuditHead).values(seq=1), True),
        (delete(AuditCheckpoint), True),
        (text("SELECT seq FROM audit_log"), True),
        (text("update AUDIT_HEAD set seq = 1"), True),
        (text("DELETE FROM audit_checkpoints"), True),
        (select(Account.id), False),
        (select(aliased(Account, name="audit_log").id), False),  # an alias is not the table
        (insert(Account), False),
        (update(Account).values(name="x"), False),
        (delete(Account), False),
        (text("SELECT 1 FROM accounts"), False),
        (text("SELECT 1 FROM audit_logs"), False),
        (text("SELECT my_audit_log FROM accounts"), False),
        (union(select(Account.id), select(Account.id)), False),
        # Compound forms: the audit tables anywhere in the statement.
        (union(select(Account.id), select(AuditEntry.actor_id)), True),
        (union_all(select(AuditHead.seq), select(AuditEntry.seq)), True),
        (except_(select(Account.id), select(AuditEntry.actor_id)), True),
        (union(select(Account.id), union(select(Account.id), select(AuditEntry.actor_id))), True),
        (select(union(select(Account.id), select(AuditEntry.actor_id)).subquery()), True),
        (select(select(AuditEntry.seq).cte("c")), True),
        (select(Account.id).where(Account.id.in_(select(_LOG_CTE.c.actor_id))), True),
        (select(Account.id).add_cte(select(AuditHead.seq).cte("h")), True),
        (select(Account.id).where(Account.id.in_(select(AuditEntry.actor_id))), True),
        (select(Account.id).where(exists().where(AuditEntry.actor_id == Account.id)), True),
        (select(Account.id, select(func.max(AuditHead.seq)).scalar_subquery()), True),
        (insert(Account).from_select(["id"], select(AuditEntry.actor_id)), True),
        (update(Account).where(Account.id == AuditEntry.actor_id).values(name="x"), True),
        (delete(Account).where(Account.id.in_(select(AuditEntry.actor_id))), True),
        (text("SELECT seq FROM audit_log").columns(column("seq")), True),
        (select(literal_column("seq")).select_from(text("audit_head")), True),
        # ... and not when only a name is an audit table's.
        (select(select(Account.id).cte("audit_log")), False),
        (select(select(Account.id).subquery("audit_head")), False),
        (union(select(aliased(Account, name="audit_log").id), select(Account.id)), False),
        (update(Account).where(Account.id == _AUDIT_NAMED.id).values(name="x"), False),
        (insert(Account).from_select(["id"], select(Account.id)), False),
        (select(Account.id).where(text("accounts.name <> 'audit_logs'")), False),
    ],
)
def test_which_statements_read_or_write_the_audit_tables(statement: Any, touches: bool) -> None:
    assert audit._touches_audit(statement) is touches
