"""The audit log's retention: entries older than the policy are pruned behind a signed anchor.

The CNIL's recommendation on logging (2021) keeps access logs from six months to one year.
The chain cannot lose its oldest entries without a trace: verification recomputes every
hash from the first entry. Pruning therefore removes a *prefix* of the chain, up to an entry
S, and first signs a checkpoint at S (Ed25519, the checkpoint key): "the chain had this hash
at entry S". That signed anchor stays, and verification starts from it: entry S+1 must link
to the anchor's hash, and the chain must hold the ``audit.prune`` entry that says it pruned
through S. Nothing else changes: every later entry and checkpoint is checked as before.

Pruning deletes from an append-only table, so it runs with the role that owns the schema
(``PERMANENCE_DATABASE_MIGRATION_URL``), never the application's: ``permanence audit prune``.
The facts that outlive the log stay in their own tables (breach register, contracts,
certificates, consents); the audit entries are access traces, pseudonymous.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from permanence.audit import integrity
from permanence.audit import service as audit
from permanence.audit.model import AuditCheckpoint, AuditEntry
from permanence.crypto.keyring import Keyring
from permanence.db import utcnow
from permanence.errors import Conflict, ValidationFailed

DEFAULT_MONTHS = 12
MIN_MONTHS, MAX_MONTHS = 6, 12  # the CNIL's recommendation on logging
BATCH = 10_000


def cutoff(now: dt.datetime, months: int) -> dt.datetime:
    """``now`` minus whole calendar months (the last day of a shorter month)."""
    year, month = divmod(now.year * 12 + (now.month - 1) - months, 12)
    month += 1
    for day in range(now.day, 27, -1):
        try:
            return now.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return now.replace(year=year, month=month, day=min(now.day, 28))


@dataclass(frozen=True)
class Pruned:
    through: int  # the last entry removed (0: none)
    entries: int
    anchor: dict[str, Any] | None  # the signed anchor, to keep away from the database

    def line(self) -> str:
        if not self.entries:
            return "audit log: nothing older than the retention period"
        return (
            f"audit log: {self.entries} entries pruned through {self.through}, "
            f"behind a signed anchor at {self.through}"
        )


def _sign_at(session: Session, keyring: Keyring, seq: int, head_hash: str) -> dict[str, Any]:
    key = keyring.checkpoint_signing_key()
    existing = session.get(AuditCheckpoint, seq)
    pub = integrity.public_key_b64(key.public_key())
    if existing is not None:
        created_s, sig = existing.created_at.isoformat(), existing.signature
    else:
        created = utcnow()
        created_s = created.isoformat()
        sig = base64.b64encode(key.sign(integrity._message(seq, head_hash, created_s))).decode()
        session.add(
            AuditCheckpoint(
                seq=seq, head_hash=head_hash, created_at=created, public_key=pub, signature=sig
            )
        )
    return {
        "seq": seq,
        "head_hash": head_hash,
        "created_at": created_s,
        "public_key": pub,
        "signature": sig,
    }


def prune(
    session: Session,
    keyring: Keyring,
    *,
    months: int = DEFAULT_MONTHS,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> Pruned:
    """Remove the entries older than ``months`` (6 to 12) behind a signed anchor.

    Refused when the chain does not verify: a broken chain is evidence, never pruned. The
    session must be the schema owner's (the application role may not delete here).
    """
    if not MIN_MONTHS <= months <= MAX_MONTHS:
        raise ValidationFailed(
            f"the audit log is kept {MIN_MONTHS} to {MAX_MONTHS} months (CNIL recommendation)"
        )
    when = now or utcnow()
    limit = cutoff(when, months)
    public = keyring.checkpoint_signing_key().public_key()
    checked = integrity.verify(session, public)
    if not checked.ok:
        raise Conflict(
            "the audit chain does not verify: nothing is pruned (" + checked.line() + ")"
        )
    through = session.scalar(select(func.max(AuditEntry.seq)).where(AuditEntry.ts < limit))
    first = session.scalar(select(func.min(AuditEntry.seq))) or 0
    if through is None or through < first:
        return Pruned(0, 0, None)
    head = session.scalar(select(func.max(AuditEntry.seq))) or 0
    if through >= head:
        through = head - 1  # the head always stays: new entries link to it
    if through < first:
        return Pruned(0, 0, None)
    count = through - first + 1
    if dry_run:
        return Pruned(through, count, None)
    boundary = session.scalars(select(AuditEntry.hash).where(AuditEntry.seq == through)).one()
    anchor = _sign_at(session, keyring, through, boundary)
    session.flush()
    start = first
    while start <= through:
        stop = min(start + BATCH - 1, through)
        session.execute(delete(AuditEntry).where(AuditEntry.seq >= start, AuditEntry.seq <= stop))
        start = stop + 1
    session.execute(delete(AuditCheckpoint).where(AuditCheckpoint.seq < through))
    audit.record(
        session,
        "audit.prune",
        "audit_log",
        details={"through": through, "entries": count, "months": months},
    )
    return Pruned(through, count, anchor)


def prune_with_owner(
    settings: Any, keyring: Keyring, *, months: int, dry_run: bool = False
) -> Pruned:
    """Prune through the schema owner's connection (the application role may not delete
    from the audit log): ``PERMANENCE_DATABASE_MIGRATION_URL``."""
    from permanence.context import AccessContext
    from permanence.db import Database

    db = Database(settings.effective_migration_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        with db.session(AccessContext.system("cli:audit-prune")) as s:
            return prune(s, keyring, months=months, dry_run=dry_run)
    finally:
        db.dispose()


def overdue_entries(session: Session, now: dt.datetime, months: int = DEFAULT_MONTHS) -> int:
    """How many entries are older than the retention period (the compliance check)."""
    limit = cutoff(now, months)
    return session.scalar(select(func.count()).where(AuditEntry.ts < limit)) or 0
