"""Checking the audit chain and signing its head: ``verify`` recomputes the chain (from
the start, or from the signed anchor the retention policy pruned it behind), checkpoints sign
the head so an export kept elsewhere can vouch for it. The write path is ``service``; this
module reads what it wrote and imports it, never the other way round."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from permanence.audit import chain
from permanence.audit.model import GENESIS_HASH, AuditCheckpoint, AuditEntry, AuditHead
from permanence.crypto.keyring import Keyring
from permanence.db import utcnow

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


# The batches of one walk (chain.walk reads these columns in this order).
_VERIFY_SQL = (
    "SELECT seq, body, prev_hash, hash, action, actor_id, subject_id, ts FROM audit_log "
    "WHERE seq > ? ORDER BY seq LIMIT ?"
)

# Below this many entries the chain is walked in one process: starting the second one (a few
# hundredths of a second) would cost more than it saves (ADR 0042).
SPLIT_AT = 50_000


def verify(
    session: Session,
    public_key: Ed25519PublicKey,
    external_checkpoints: Iterable[Mapping[str, Any]] = (),
    batch: int = 20_000,
    *,
    split_at: int = SPLIT_AT,
) -> VerifyResult:
    """Recompute the chain from the start (or from the signed anchor the retention policy
    pruned it behind, audit/retention.py); name the first entry that does not hold.

    A chain in a SQLite file of ``split_at`` entries or more is walked in two parts at once,
    the first by a second process (ADR 0042); when either part finds a fault, the whole chain
    is walked again in one, which names the first fault as it always has."""
    prev, anchored = GENESIS_HASH, 0
    anchor = anchor_of(session, public_key)
    if isinstance(anchor, str):
        return VerifyResult(False, 0, 0, 1, anchor)
    if anchor is not None:
        anchored, prev = anchor
    wanted = {int(c["seq"]) for c in external_checkpoints if "seq" in c}
    stored = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)).all()
    wanted |= {c.seq for c in stored}
    # Read in large batches through the transaction's DB-API cursor (no ORM, no per-row type
    # processing): the chain is checked at the speed of hashing, not of object building.
    conn = session.connection()
    cursor: Any = conn.connection.cursor()  # iterated: its rows go to chain.walk one by one
    sql = _VERIFY_SQL.replace("?", "%s") if conn.dialect.paramstyle != "qmark" else _VERIFY_SQL

    def differing(seq: int) -> str | None:
        return _column_differing_at(session, seq)

    try:
        w = None
        if conn.dialect.name == "sqlite":
            w = _walked_in_two(cursor, sql, anchored, prev, wanted, batch, split_at, differing)
        if w is None:
            w = chain.Walk(anchored, prev, wanted)
            while w.failure is None:
                cursor.execute(sql, (w.last, batch))
                if not chain.walk(w, cursor, differing):
                    break
    finally:
        cursor.close()
    if w.failure is not None:
        broken, problem, column = w.failure
        return VerifyResult(False, w.count, w.last, broken, problem, column=column)
    count, last, prev, hashes_at = w.count, w.last, w.prev, w.hashes_at
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


def _walked_in_two(
    cursor: Any,
    sql: str,
    anchored: int,
    prev: str,
    wanted: set[int],
    batch: int,
    split_at: int,
    differing: Callable[[int], str | None],
) -> chain.Walk | None:
    """The chain of a SQLite file walked in two parts at once: a second process walks the
    first half (``chain.start_range``, on its own connection) while this one walks the rest,
    from the link the second half's first entry carries; that link must then be the hash
    the first half ends on. None — walk it all in one — when the chain is shorter than
    ``split_at`` or not in a file, when the second process could not start or failed, or
    when either part found anything: a fault, a gap, an entry whose columns must be checked
    field by field and differ, the halves not meeting. (The second process reads what is
    committed; what this transaction alone sees, it walks in its part or in one.)"""
    cursor.execute("SELECT max(seq) FROM audit_log")
    (top,) = cursor.fetchone()
    if top is None or top - anchored < split_at:
        return None
    path = next((row[2] for row in cursor.execute("PRAGMA database_list") if row[1] == "main"), "")
    if not path:  # in memory
        return None
    middle = anchored + (top - anchored) // 2
    cursor.execute("SELECT prev_hash FROM audit_log WHERE seq = ?", (middle + 1,))
    link = cursor.fetchone()
    try:
        bytes.fromhex(link[0])  # the link the walk starts from (a hex digest)
    except (TypeError, ValueError):  # no entry there, or not hex: found when walked in one
        return None
    proc = chain.start_range(path, anchored, middle, prev, wanted, batch)
    if proc is None:
        return None
    try:
        w = chain.Walk(middle, link[0], wanted)
        while w.failure is None:
            cursor.execute(sql, (w.last, batch))
            if not chain.walk(w, cursor, differing):
                break
        first = chain.range_result(proc)
    finally:
        chain.stop(proc)
    # The first half stops at the entry before its first fault (or before a gap): it must end
    # on the entry before the seam, on the link the second half starts from.
    if w.failure is not None or first is None or first[:2] != (middle, link[0]):
        return None
    if any(differing(seq) is not None for seq in first[3]):
        return None
    w.count += middle - anchored
    w.hashes_at.update(first[2])
    return w


def prev_at_anchor(anchor: tuple[int, str] | None) -> str | None:
    return anchor[1] if anchor is not None else None


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


def anchor_of(session: Session, public_key: Ed25519PublicKey) -> tuple[int, str] | str | None:
    """Where a pruned chain starts: ``(seq, hash)`` of its signed anchor; ``None`` for a
    chain that starts at entry 1; a reason (str) when the start is not anchored."""
    first = session.scalar(select(func.min(AuditEntry.seq)))
    if first is None or first == 1:
        return None
    anchor = session.get(AuditCheckpoint, first - 1)
    if anchor is None:
        return f"entries before {first} are missing and no signed anchor is at {first - 1}"
    cp = {
        "seq": anchor.seq,
        "head_hash": anchor.head_hash,
        "created_at": anchor.created_at.isoformat(),
        "signature": anchor.signature,
    }
    if not _signature_ok(public_key, cp):
        return f"the anchor at {anchor.seq} is not validly signed"
    recorded = False
    for body in session.scalars(
        select(AuditEntry.body).where(AuditEntry.action == "audit.prune").order_by(AuditEntry.seq)
    ):
        if json.loads(body).get("details", {}).get("through") == anchor.seq:
            recorded = True
    if not recorded:
        return f"entries before {first} are missing and no audit.prune entry says so"
    return anchor.seq, anchor.head_hash
