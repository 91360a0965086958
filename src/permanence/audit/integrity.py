"""Checking the audit chain and signing its head: ``verify`` recomputes the chain (from
the start, or from the signed anchor the retention policy pruned it behind), checkpoints sign
the head so an export kept elsewhere can vouch for it. The write path is ``service``; this
module reads what it wrote and imports it, never the other way round."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select
from sqlalchemy.orm import Session

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
