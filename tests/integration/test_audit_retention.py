"""The audit log's retention (CNIL logging recommendation: 6 months to 1 year): entries past
12 months are pruned behind a signed anchor, and the rest still verifies; removing entries any
other way is still caught."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from permanence.audit import integrity, retention
from permanence.audit import service as audit
from permanence.audit.model import AuditCheckpoint, AuditEntry
from permanence.compliance import checks
from permanence.config import Settings
from permanence.context import AccessContext
from permanence.db import Database, utcnow
from permanence.errors import Conflict, ValidationFailed
from permanence.runtime import Runtime
from tests.conftest import cli_env, run_cli
from tests.factories import make_account, make_caller

SYSTEM = AccessContext.system("test")


@contextmanager
def owner(settings: Settings) -> Iterator[Session]:
    """The schema owner's session: the only one that may change the audit log."""
    db = Database(settings.effective_migration_url)
    try:
        with db.session(SYSTEM) as s:
            yield s
    finally:
        db.dispose()


def _verify(rt: Runtime, external: list[dict[str, object]] | None = None) -> integrity.VerifyResult:
    with rt.db.session(SYSTEM, readonly=True) as s:
        return integrity.verify(s, rt.keyring.checkpoint_signing_key().public_key(), external or [])


@contextmanager
def written_days_ago(monkeypatch: pytest.MonkeyPatch, days: int) -> Iterator[None]:
    """Audit entries recorded inside are dated ``days`` ago, in the hashed body and the ts
    column alike (the clock the audit log reads is turned back; nothing else is)."""
    with monkeypatch.context() as m:
        m.setattr(audit, "utcnow", lambda: utcnow() - dt.timedelta(days=days))
        yield


def _head(rt: Runtime) -> int:
    with rt.db.session(SYSTEM, readonly=True) as s:
        return int(s.scalar(select(func.max(AuditEntry.seq))) or 0)


def _check(rt: Runtime) -> checks.CheckResult:
    return next(r for r in checks.run_checks(rt) if r.code == "audit.retention")


def test_cnil_logging_entries_past_12_months_are_pruned_behind_a_signed_anchor(
    rt: Runtime, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with written_days_ago(monkeypatch, 400):
        account = make_account(rt)
        for i in range(2):
            make_caller(rt, account.id, phone=f"019900100{i}")
    old = _head(rt)
    for i in range(2, 5):
        make_caller(rt, account.id, phone=f"019900100{i}")
    assert _head(rt) > old
    with rt.db.session(SYSTEM) as s:
        early = integrity.create_checkpoint(s, rt.keyring)  # exported before the prune
    assert _check(rt).evidence == [
        f"{old} entries: run 'permanence audit prune' as the schema owner"
    ]
    dry = retention.prune_with_owner(settings, rt.keyring, months=12, dry_run=True)
    assert (dry.through, dry.entries) == (old, old)
    done = retention.prune_with_owner(settings, rt.keyring, months=12)
    assert (done.through, done.entries) == (old, old)
    assert done.anchor is not None and done.anchor["seq"] == old
    with rt.db.session(SYSTEM, readonly=True) as s:
        assert s.scalar(select(func.min(AuditEntry.seq))) == old + 1
        prune_entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "audit.prune")).one()
        assert '"through":' + str(old) in prune_entry.body
    result = _verify(rt, [early, done.anchor])
    assert result.ok, result.line()
    assert result.pruned_through == old
    assert f"from the signed anchor at {old}" in result.line()
    assert _check(rt).passed
    # Entries removed any other way are still caught: the next one, behind the anchor's back.
    with owner(settings) as s:
        s.execute(delete(AuditEntry).where(AuditEntry.seq == old + 1))
    broken = _verify(rt)
    assert not broken.ok
    assert broken.problem == (
        f"entries before {old + 2} are missing and no signed anchor is at {old + 1}"
    )


def test_an_anchor_without_its_prune_entry_or_a_forged_one_does_not_verify(
    rt: Runtime, settings: Settings
) -> None:
    account = make_account(rt)
    with rt.db.session(SYSTEM) as s:
        cp = integrity.create_checkpoint(s, rt.keyring)
    make_caller(rt, account.id)  # entries after the checkpoint
    seq = int(cp["seq"])
    # Someone deletes everything up to a genuine checkpoint: no audit.prune entry says so.
    with owner(settings) as s:
        s.execute(delete(AuditEntry).where(AuditEntry.seq <= seq))
    result = _verify(rt)
    assert not result.ok
    assert (
        result.problem == f"entries before {seq + 1} are missing and no audit.prune entry says so"
    )
    # Or forges an anchor: its signature does not hold.
    with owner(settings) as s:
        s.execute(delete(AuditCheckpoint))
        s.add(
            AuditCheckpoint(
                seq=seq,
                head_hash="0" * 64,
                created_at=utcnow(),
                public_key=cp["public_key"],
                signature=cp["signature"],
            )
        )
    result = _verify(rt)
    assert not result.ok and result.problem == f"the anchor at {seq} is not validly signed"


def test_pruning_refuses_a_broken_chain_and_a_period_outside_the_recommendation(
    rt: Runtime, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with written_days_ago(monkeypatch, 400):
        make_account(rt)
    assert _head(rt) >= 3
    with pytest.raises(ValidationFailed):
        retention.prune_with_owner(settings, rt.keyring, months=24)
    with owner(settings) as s:
        s.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(body="{}"))
    with pytest.raises(Conflict, match="nothing is pruned"):
        retention.prune_with_owner(settings, rt.keyring, months=12)
    with rt.db.session(SYSTEM, readonly=True) as s:
        assert s.scalar(select(func.min(AuditEntry.seq))) == 1


def test_the_audit_prune_command(rt: Runtime, settings: Settings) -> None:
    make_account(rt)
    env = cli_env(settings)
    proc = run_cli(env, "audit", "prune", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "audit log: 0 entries older than 12 months"
    proc = run_cli(env, "audit", "prune", "--months", "3")
    assert proc.returncode == 2 and "6 to 12 months" in proc.stderr


def test_cutoff_counts_calendar_months() -> None:
    at = dt.datetime(2026, 8, 31, 12, tzinfo=dt.UTC)
    assert retention.cutoff(at, 6) == dt.datetime(2026, 2, 28, 12, tzinfo=dt.UTC)
    assert retention.cutoff(at, 12) == dt.datetime(2025, 8, 31, 12, tzinfo=dt.UTC)
