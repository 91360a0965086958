"""Append to, verify and checkpoint the audit chain.

Entries are written in the same transaction as the change they record, so a rolled-back change
leaves no entry and a committed change always has one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Table, event, insert, select, update
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql import util as sql_util

from permanence.audit.model import GENESIS_HASH, AuditCheckpoint, AuditEntry, AuditHead
from permanence.crypto.keyring import Keyring
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
    """Whether a statement run through the session reads or writes an audit table: an
    ORM or Core SELECT (its FROM clauses), INSERT, UPDATE or DELETE, or raw SQL naming one.
    A SELECT reading them only in a subquery of its WHERE clause is not seen (none does)."""
    table = getattr(statement, "table", None)  # INSERT, UPDATE, DELETE
    if table is not None:
        return getattr(table, "name", None) in _AUDIT_TABLES
    text_ = getattr(statement, "text", None)
    if isinstance(text_, str):
        return _AUDIT_TABLE_IN_SQL.search(text_) is not None
    froms = getattr(statement, "get_final_froms", None)
    if froms is None:
        return False
    return any(
        getattr(t, "name", None) in _AUDIT_TABLES
        for f in froms()
        for t in sql_util.find_tables(f, include_aliases=True, include_joins=True)
    )


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


# Every column of audit_log and how verify() covers it. seq, prev_hash and body are inputs
# of the hash; hash is recomputed; the others are indexed copies of hashed body fields and
# must equal them. A column added without a line here fails tests/integration/test_audit.py.
COVERED_COLUMNS = {
    "seq": "hash input",
    "prev_hash": "hash input (link to the previous entry)",
    "body": "hash input",
    "hash": "recomputed",
    "ts": "copy of body.ts",
    "action": "copy of body.action",
    "actor_id": "copy of body.actor",
    "subject_id": "copy of body.subject",
}


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    head_seq: int
    broken_seq: int | None = None
    problem: str | None = None
    checkpoints: int = 0
    column: str | None = None  # the column found altered, when one is
    # Entries up to here were pruned by the retention policy, behind a signed anchor.
    pruned_through: int = 0

    def line(self) -> str:
        if self.ok:
            pruned = (
                f" (from the signed anchor at {self.pruned_through}: earlier entries pruned "
                "by the retention policy)"
                if self.pruned_through
                else ""
            )
            return (
                f"audit chain intact: {self.entries} entries, head at {self.head_seq}, "
                f"{self.checkpoints} checkpoint(s) matched{pruned}"
            )
        return f"audit chain BROKEN at entry {self.broken_seq}: {self.problem}"


_VERIFY_SQL = (
    "SELECT seq, body, prev_hash, hash, action, actor_id, subject_id, ts FROM audit_log "
    "WHERE seq > ? ORDER BY seq LIMIT ?"
)


def verify(
    session: Session,
    public_key: Ed25519PublicKey,
    external_checkpoints: Iterable[Mapping[str, Any]] = (),
    batch: int = 20_000,
) -> VerifyResult:
    """Recompute the chain from the start (or from the signed anchor the retention policy
    pruned it behind, audit/retention.py); name the first entry that does not hold."""
    from permanence.audit.retention import anchor_of

    prev, expected_seq, count = GENESIS_HASH, 1, 0
    anchor = anchor_of(session, public_key)
    if isinstance(anchor, str):
        return VerifyResult(False, 0, 0, 1, anchor)
    anchored = 0
    if anchor is not None:
        anchored, prev = anchor
        expected_seq = anchored + 1
    hashes_at: dict[int, str] = {}
    wanted = {int(c["seq"]) for c in external_checkpoints if "seq" in c}
    stored = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)).all()
    wanted |= {c.seq for c in stored}
    last = anchored
    # Read in large batches through the transaction's DB-API cursor (no ORM, no per-row type
    # processing): the chain is checked at the speed of hashing, not of object building.
    conn = session.connection()
    cursor = conn.connection.cursor()
    sql = _VERIFY_SQL.replace("?", "%s") if conn.dialect.paramstyle != "qmark" else _VERIFY_SQL
    sha256, prev_raw = hashlib.sha256, bytes.fromhex(prev)
    # The indexed columns are copies of the hashed body: a quick test on its text (below);
    # what it is made of is remembered (actions and actors recur along the chain).
    # What the quick test builds from the columns is remembered: actions and actors recur.
    leads: dict[tuple[object, object], str] = {}  # (action, actor) -> '"action":…,"actor":…,'
    iso = _iso_utc
    try:
        while True:
            cursor.execute(sql, (last, batch))
            rows = cursor.fetchall()
            if not rows:
                break
            if len(leads) > 100_000:
                leads.clear()
            for seq, body, prev_hash, digest, action, actor, subject, ts in rows:
                if seq != expected_seq:
                    return VerifyResult(
                        False,
                        count,
                        last,
                        expected_seq,
                        "entry missing (gap in sequence)",
                        column="seq",
                    )
                if prev_hash != prev:
                    return VerifyResult(
                        False,
                        count,
                        last,
                        seq,
                        "column prev_hash: previous-hash link does not match",
                        column="prev_hash",
                    )
                computed = sha256(prev_raw + seq.to_bytes(8, "big") + body.encode())
                if computed.hexdigest() != digest:
                    return VerifyResult(
                        False,
                        count,
                        last,
                        seq,
                        "column body or hash: content does not match its hash",
                        column="body",
                    )
                # The quick test, on the body's canonical text (``canonical``: sorted keys;
                # codes and ids hold no quote): "action" and "actor" come before "details"
                # (the one nested object), "subject" and "ts" are the body's last two keys.
                # It passes only when every copy matches; a row that does not pass it is
                # checked field by field, which names the column (or finds the row fine: a ts
                # written without microseconds, an older body). Written out in the loop: it
                # runs for every entry.
                lead = leads.get((action, actor))
                if lead is None:
                    lead = leads[(action, actor)] = _lead_text(action, actor)
                at = body.find(lead) if lead else -1
                if type(subject) is str and len(subject) == 32:  # SQLite's uuid: 32 hex digits
                    # Not escaped as JSON: at its place in the body only the quoted id it
                    # stands for can equal this text (a uuid's text holds no quote).
                    u = subject
                    subject_j = f'"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}"'
                else:
                    subject_j = _id_json(subject)
                # SQLite keeps ts as naive UTC text ("2026-12-06 16:28:56.771494")
                ts_j = ts.replace(" ", "T", 1) + "+00:00" if type(ts) is str else iso(ts)
                if (
                    at < 0
                    or body.find('"details":') <= at
                    or not body.endswith(f',"subject":{subject_j},"ts":"{ts_j}"}}')
                ):
                    differs = _column_differing_at(session, seq)
                    if differs is not None:
                        return VerifyResult(
                            False,
                            count,
                            last,
                            seq,
                            f"column {differs} differs from the hashed body",
                            column=differs,
                        )
                if seq in wanted:
                    hashes_at[seq] = digest
                prev, expected_seq, last, count = digest, seq + 1, seq, count + 1
                prev_raw = computed.digest()
    finally:
        cursor.close()
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq != last or head.hash != prev):
        return VerifyResult(False, count, last, last + 1, "entries after the last one were removed")
    matched = 0
    all_checkpoints: list[Mapping[str, Any]] = [
        {
            "seq": c.seq,
            "head_hash": c.head_hash,
            "created_at": c.created_at.isoformat(),
            "signature": c.signature,
        }
        for c in stored
    ]
    all_checkpoints += list(external_checkpoints)
    for cp in all_checkpoints:
        seq = int(cp["seq"])
        if not _signature_ok(public_key, cp):
            return VerifyResult(False, count, last, seq, "checkpoint signature is not valid")
        if seq < anchored:
            continue  # its entries were pruned: the anchor vouches for what followed
        if seq == anchored:
            if cp["head_hash"] != prev_at_anchor(anchor):
                return VerifyResult(
                    False, count, last, seq, "chain differs from a signed checkpoint (rewritten)"
                )
            matched += 1
            continue
        if seq > last:
            return VerifyResult(
                False, count, last, last + 1, f"checkpoint at {seq} is beyond the chain head"
            )
        if hashes_at.get(seq) != cp["head_hash"]:
            return VerifyResult(
                False, count, last, seq, "chain differs from a signed checkpoint (rewritten)"
            )
        matched += 1
    return VerifyResult(True, count, last, checkpoints=matched, pruned_through=anchored)


def prev_at_anchor(anchor: tuple[int, str] | None) -> str | None:
    return anchor[1] if anchor is not None else None


def _uuid_text(value: object) -> str | None:
    """A uuid column as the DB-API driver returns it (UUID, or SQLite's 32 hex digits), as the
    body writes it; None for NULL."""
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return str(value)
    text = str(value)
    if len(text) == 32:
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    return text


def _id_json(value: object) -> str:
    """An id column's JSON text in the body (``"…"`` or ``null``)."""
    text = _uuid_text(value)
    return json.dumps(text) if text is not None else "null"


def _lead_text(action: object, actor: object) -> str:
    """The body's text from "action" to the actor's id, for these columns ("": a column no
    canonical body can hold — a quote or a backslash in the action; checked field by
    field)."""
    if not isinstance(action, str) or '"' in action or "\\" in action:
        return ""
    return '"action":"' + action + '","actor":' + _id_json(actor) + ","


def _iso_utc(value: object) -> str:
    """The ts column as the body writes it (``isoformat()`` of an aware UTC datetime)."""
    if type(value) is str:
        return value.replace(" ", "T", 1) + "+00:00"  # SQLite's naive UTC text
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).isoformat()
    return str(value).replace(" ", "T", 1) + "+00:00"  # SQLite's naive UTC text


def _column_differing_at(session: Session, seq: int) -> str | None:
    """``_column_differing`` for one entry, read through the typed columns."""
    row = session.execute(
        select(
            AuditEntry.body,
            AuditEntry.ts,
            AuditEntry.action,
            AuditEntry.actor_id,
            AuditEntry.subject_id,
        ).where(AuditEntry.seq == seq)
    ).one()
    return _column_differing(row[0], row[1], row[2], row[3], row[4])


def _column_differing(
    body: str,
    ts: dt.datetime,
    action: str,
    actor: uuid.UUID | None,
    subject: uuid.UUID | None,
) -> str | None:
    """The first indexed column that is not the copy of its hashed body field, or None."""
    try:
        data = json.loads(body)
        hashed_ts = dt.datetime.fromisoformat(str(data.get("ts")))
    except (ValueError, TypeError, AttributeError):  # not JSON, or JSON but not an object
        return "body"
    if hashed_ts.tzinfo is None or hashed_ts != ts:
        return "ts"
    if data.get("action") != action:
        return "action"
    if data.get("actor") != (str(actor) if actor else None):
        return "actor_id"
    if data.get("subject") != (str(subject) if subject else None):
        return "subject_id"
    return None


def _message(seq: int, head_hash: str, created_at: str) -> bytes:
    return f"permanence-audit-checkpoint|{seq}|{head_hash}|{created_at}".encode()


def _signature_ok(public_key: Ed25519PublicKey, cp: Mapping[str, Any]) -> bool:
    try:
        sig = base64.b64decode(str(cp["signature"]))
        public_key.verify(
            sig, _message(int(cp["seq"]), str(cp["head_hash"]), str(cp["created_at"]))
        )
    except (InvalidSignature, ValueError, KeyError):
        return False
    return True


def public_key_b64(public_key: Ed25519PublicKey) -> str:
    return base64.b64encode(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def create_checkpoint(session: Session, keyring: Keyring) -> dict[str, Any]:
    """Sign the current head; store it and return it for export (keep a copy elsewhere)."""
    head = session.get(AuditHead, 1, with_for_update=True)
    if head is None or head.seq == 0:
        raise ValueError("the audit log is empty: nothing to checkpoint")
    key = keyring.checkpoint_signing_key()
    created = utcnow()
    created_s = created.isoformat()
    sig = base64.b64encode(key.sign(_message(head.seq, head.hash, created_s))).decode()
    pub = public_key_b64(key.public_key())
    existing = session.get(AuditCheckpoint, head.seq)
    if existing is None:
        session.add(
            AuditCheckpoint(
                seq=head.seq, head_hash=head.hash, created_at=created, public_key=pub, signature=sig
            )
        )
    else:
        created_s, sig = existing.created_at.isoformat(), existing.signature
    return {
        "seq": head.seq,
        "head_hash": head.hash,
        "created_at": created_s,
        "public_key": pub,
        "signature": sig,
    }


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
