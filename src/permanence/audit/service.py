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
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit.model import GENESIS_HASH, AuditCheckpoint, AuditEntry, AuditHead
from permanence.crypto.keyring import Keyring
from permanence.db import ctx_of, utcnow

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
) -> AuditEntry:
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
    head = _locked_head(session)
    seq = head.seq + 1
    digest = entry_hash(head.hash, seq, body)
    entry = AuditEntry(
        seq=seq,
        ts=now,
        action=action,
        actor_id=actor,
        subject_id=subject_id,
        body=body,
        prev_hash=head.hash,
        hash=digest,
    )
    session.add(entry)
    head.seq, head.hash = seq, digest
    # Written with the transaction's next flush (at the latest its commit): the change and
    # its entries commit together or not at all.
    return entry


def key_label(name: str) -> str:
    """An API key's name as the audit log keeps it: a code (other characters become "_")."""
    return re.sub(r"[^A-Za-z0-9_.:/+\-]", "_", name)[:100]


def _locked_head(session: Session) -> AuditHead:
    """The chain head, locked for this transaction (``SELECT … FOR UPDATE``) on first use;
    later entries of the same transaction reuse it — the lock is already held."""
    transaction = session.get_transaction()
    cached = session.info.get("_audit_head")
    if cached is not None and cached[0] is transaction:
        head: AuditHead = cached[1]
        return head
    found = session.get(AuditHead, 1, with_for_update=True, populate_existing=True)
    if found is None:
        found = AuditHead(id=1, seq=0, hash=GENESIS_HASH)
        session.add(found)
    session.info["_audit_head"] = (transaction, found)
    return found


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


def verify(
    session: Session,
    public_key: Ed25519PublicKey,
    external_checkpoints: Iterable[Mapping[str, Any]] = (),
    batch: int = 5000,
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
    while True:
        rows = session.execute(
            select(
                AuditEntry.seq,
                AuditEntry.body,
                AuditEntry.prev_hash,
                AuditEntry.hash,
                AuditEntry.action,
                AuditEntry.actor_id,
                AuditEntry.subject_id,
                AuditEntry.ts,
            )
            .where(AuditEntry.seq > last)
            .order_by(AuditEntry.seq)
            .limit(batch)
        ).all()
        if not rows:
            break
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
            if entry_hash(prev, seq, body) != digest:
                return VerifyResult(
                    False,
                    count,
                    last,
                    seq,
                    "column body or hash: content does not match its hash",
                    column="body",
                )
            differs = _column_differing(body, ts, action, actor, subject)
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
