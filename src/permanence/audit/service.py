"""Append to, verify and checkpoint the audit chain.

Entries are written in the same transaction as the change they record, so a rolled-back change
leaves no entry and a committed change always has one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Table, event, insert, select, update
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql import visitors

from permanence.audit.model import GENESIS_HASH, AuditEntry, AuditHead
from permanence.db import COMMIT_AUDIT, COMMIT_LAST, at_commit, ctx_of, run_commit_steps, utcnow

# Reasons, actions and detail strings are codes, never free text: free text could carry a
# caller's name into a log that erasure cannot reach.
_CODE = re.compile(r"^[A-Za-z0-9_.:/+\-]{0,120}$")
DetailValue = str | int | float | bool | None


def _check_code(what: str, value: str) -> None:
    if not _CODE.match(value):
        raise ValueError(f"audit {what} must be a code (letters, digits, _.:/+-), not free text")


def entry_hash(prev_hash: str, seq: int, body: str) -> str:
    return hashlib.sha256(
        bytes.fromhex(prev_hash) + seq.to_bytes(8, "big") + body.encode()
    ).hexdigest()


def canonical(body: Mapping[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def record(
    session: Session,
    action: str,
    object_type: str,
    object_id: uuid.UUID | str | None = None,
    *,
    subject_id: uuid.UUID | None = None,
    details: Mapping[str, DetailValue | uuid.UUID] | None = None,
) -> None:
    """Append one entry for the session's access context (written with the transaction)."""
    ctx = ctx_of(session)
    _check_code("action", action)
    _check_code("object type", object_type)
    _check_code("reason", ctx.reason)
    clean: dict[str, DetailValue] = {}
    for key, value in (details or {}).items():
        _check_code("detail key", key)
        if isinstance(value, uuid.UUID):
            clean[key] = str(value)
        elif isinstance(value, str):
            _check_code(f"detail {key}", value)
            clean[key] = value
        else:
            clean[key] = value
    now = utcnow()
    # Who acted: a person (actor = user id) or an API key (actor = key id, with its name);
    # neither for the system's own work (role "system").
    actor = ctx.actor_id if ctx.actor_id is not None else ctx.api_key_id
    who: dict[str, str] = {}
    if ctx.actor_id is not None:
        who["actor_kind"] = "user"
    elif ctx.api_key_id is not None:
        who["actor_kind"] = "api_key"
        who["key_name"] = key_label(ctx.api_key_name or "")
    body = canonical(
        {
            **who,
            "ts": now.isoformat(),
            "actor": str(actor) if actor else None,
            "role": ctx.role.value,
            "account": str(ctx.account_id) if ctx.account_id else None,
            "reason": ctx.reason,
            "action": action,
            "object": f"{object_type}:{object_id}" if object_id is not None else object_type,
            "subject": str(subject_id) if subject_id else None,
            "details": clean,
        }
    )
    chain = _chain(session)
    chain.rows.append((now, action, actor, subject_id, body))
    held = session.identity_map.get(_HEAD_KEY) if session.identity_map else None
    if held is not None:
        # An AuditHead loaded earlier in this transaction no longer names the head: reloaded
        # when next read, which writes this entry first (_before_orm_query).
        session.expire(held)
    # Numbered, hashed and written at the transaction's commit (the head's row lock is taken
    # there, after the last flush: ADR 0035), or before an ORM statement reads or writes the
    # audit tables in it: the change and its entries commit together or not at all.


def key_label(name: str) -> str:
    """An API key's name as the audit log keeps it: a code (other characters become "_")."""
    return re.sub(r"[^A-Za-z0-9_.:/+\-]", "_", name)[:100]


_CHAIN = "_audit_chain"
_LOG = cast(Table, AuditEntry.__table__)
_HEAD = cast(Table, AuditHead.__table__)
_AUDIT_TABLES = frozenset({"audit_log", "audit_head", "audit_checkpoints"})
_AUDIT_TABLE_IN_SQL = re.compile(r"\baudit_(?:log|head|checkpoints)\b", re.IGNORECASE)
_HEAD_LOCK = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
_HEAD_MOVE = update(_HEAD).where(_HEAD.c.id == 1)
# The head's key in a session's identity map (what identity_key(AuditHead, 1) returns, built
# without configuring the mappers at import).
_HEAD_KEY = (AuditHead, (1,), None)


class _Chain:
    """The transaction's entries not yet written (ts, action, actor, subject, body: no
    sequence number or hash yet), and once the head was locked in it, the head as this
    transaction has moved it."""

    __slots__ = ("hash", "locked", "rows", "seq", "stored", "transaction")

    def __init__(self, transaction: object) -> None:
        self.transaction = transaction
        self.locked = self.stored = False
        self.seq, self.hash = 0, GENESIS_HASH
        self.rows: list[tuple[dt.datetime, str, Any, uuid.UUID | None, str]] = []


def _chain(session: Session) -> _Chain:
    """This transaction's pending entries (no database access: the head is not locked)."""
    transaction = session.get_transaction()
    cached: _Chain | None = session.info.get(_CHAIN)
    if cached is not None and cached.transaction is transaction is not None:
        return cached
    if transaction is None:  # the session's first use: begin its transaction
        session.connection()
        transaction = session.get_transaction()
    chain = _Chain(transaction)
    session.info[_CHAIN] = chain
    return chain


def _write_pending(session: Session) -> None:
    """Lock the chain head (``SELECT … FOR UPDATE``, once per transaction; SQLite holds its
    write lock from ``BEGIN IMMEDIATE``), number and hash the pending entries, write them
    (one multi-row INSERT) and move the head (one UPDATE)."""
    chain: _Chain | None = session.info.get(_CHAIN)
    if chain is None or not chain.rows:
        return
    if chain.transaction is not session.get_transaction():
        session.info.pop(_CHAIN, None)  # a rolled-back transaction's: nothing to write
        return
    conn = session.connection()
    if not chain.locked:
        found = conn.execute(_HEAD_LOCK).first()
        if found is not None:
            chain.seq, chain.hash, chain.stored = int(found[0]), str(found[1]), True
        chain.locked = True
    pending, chain.rows = chain.rows, []
    seq, prev = chain.seq, chain.hash
    prev_raw = bytes.fromhex(prev)
    sha256 = hashlib.sha256
    rows: list[dict[str, Any]] = []
    for ts, action, actor, subject, body in pending:
        seq += 1
        raw = sha256(prev_raw + seq.to_bytes(8, "big") + body.encode()).digest()
        digest = raw.hex()
        rows.append(
            {
                "seq": seq,
                "ts": ts,
                "action": action,
                "actor_id": actor,
                "subject_id": subject,
                "body": body,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev, prev_raw = digest, raw
    conn.execute(insert(_LOG), rows)
    if chain.stored:
        conn.execute(_HEAD_MOVE.values(seq=seq, hash=prev))
    else:
        conn.execute(insert(_HEAD).values(id=1, seq=seq, hash=prev))
        chain.stored = True
    chain.seq, chain.hash = seq, prev
    held = session.identity_map.get(_HEAD_KEY)
    if held is not None:
        session.expire(held)  # an AuditHead loaded earlier in this transaction is stale


def _touches_audit(statement: Any) -> bool:
    """Whether a statement run through the session reads or writes an audit table, anywhere
    in it: an ORM or Core SELECT, a UNION, INTERSECT or EXCEPT of them, INSERT (also
    INSERT ... SELECT), UPDATE or DELETE, through joins, CTEs, subqueries of the FROM or WHERE
    clause or of the columns, or raw SQL (text(), in whole or in part) naming one.

    Every element of the statement is visited (a compound's selects, a CTE's body, a DML's
    target and its sources are its children); only tables are asked their names, so an alias,
    subquery or CTE named like an audit table is not taken for it, while the table under it
    is seen."""
    element: Any  # a table, text, column... (what each is asked is its own)
    for element in visitors.iterate(statement):
        visit = getattr(element, "__visit_name__", None)
        if visit == "column":  # a column's table is not its child (UPDATE ... FROM by WHERE)
            element = element.table
            visit = getattr(element, "__visit_name__", None)
        if visit == "table" and element.name in _AUDIT_TABLES:
            return True
        if visit == "textclause" and _AUDIT_TABLE_IN_SQL.search(element.text) is not None:
            return True
    return False


def _before_orm_query(state: ORMExecuteState) -> None:
    """An ORM statement on the audit tables, in a transaction with pending entries: write
    them first, so that it sees them and the head it reads is theirs."""
    session = state.session
    chain: _Chain | None = session.info.get(_CHAIN)
    if chain is None or not chain.rows or not _touches_audit(state.statement):
        return
    if chain.transaction is not session.get_transaction():
        session.info.pop(_CHAIN, None)
        return
    run_commit_steps(session, before=COMMIT_AUDIT)  # what comes before the head (none yet)
    _write_pending(session)


def _at_commit(session: Session) -> None:
    session.flush()  # the transaction's last changes (the ORM's), before its entries
    _write_pending(session)


def _forget(session: Session, *_args: Any) -> None:
    session.info.pop(_CHAIN, None)


def _at_commit_end(session: Session) -> None:
    """Entries recorded by a later commit step (none is expected to): written all the same."""
    _write_pending(session)


at_commit(COMMIT_AUDIT, _at_commit)
at_commit(COMMIT_LAST, _at_commit_end)
event.listen(Session, "do_orm_execute", _before_orm_query)
event.listen(Session, "after_soft_rollback", _forget)


def search(
    session: Session,
    *,
    action: str | None = None,
    actor_id: uuid.UUID | None = None,
    subject_id: uuid.UUID | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    before_seq: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Entries, newest first, filtered on the indexed columns.

    ``action`` matches a whole code or, ending with a dot, a family ("message." matches
    message.read, message.create…). ``before_seq`` pages backwards through the chain.
    """
    q = select(AuditEntry)
    if action:
        _check_code("action filter", action)
        if action.endswith("."):
            q = q.where(AuditEntry.action.startswith(action, autoescape=True))
        else:
            q = q.where(AuditEntry.action == action)
    if actor_id is not None:
        q = q.where(AuditEntry.actor_id == actor_id)
    if subject_id is not None:
        q = q.where(AuditEntry.subject_id == subject_id)
    if since is not None:
        q = q.where(AuditEntry.ts >= since)
    if until is not None:
        q = q.where(AuditEntry.ts < until)
    if before_seq is not None:
        q = q.where(AuditEntry.seq < before_seq)
    return list(session.scalars(q.order_by(AuditEntry.seq.desc()).limit(max(1, min(limit, 500)))))
