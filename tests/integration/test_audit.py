"""The hash chain: written with the change, verified, tamper found and named, checkpoints."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, exists, false, func, pool, select, text, union
from sqlalchemy.orm import Session

from permanence.accounts.model import Account
from permanence.audit import integrity
from permanence.audit import service as audit
from permanence.audit.model import AuditEntry
from permanence.config import Settings
from permanence.context import AccessContext
from permanence.runtime import Runtime
from tests.conftest import PG_OWNER_URL, PG_URL
from tests.factories import ctx_for, make_account, make_caller


def _verify(rt: Runtime, external: list[dict[str, object]] | None = None) -> integrity.VerifyResult:
    """``verify`` as the commands run it, and (SQLite) walked in two processes from two
    entries on (ADR 0042): both must say the same."""
    public = rt.keyring.checkpoint_signing_key().public_key()
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        result = integrity.verify(s, public, external or [])
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        assert integrity.verify(s, public, external or [], split_at=2) == result
    return result


def _raw(rt: Runtime, sql: str, **params: object) -> None:
    """As the schema owner (the application role may not UPDATE the log: that is the point)."""
    engine = create_engine(
        PG_OWNER_URL or rt.settings.effective_database_url, poolclass=pool.NullPool
    )
    with engine.begin() as conn:
        conn.execute(text(sql), params)
    engine.dispose()


def test_untouched_chain_verifies(rt: Runtime) -> None:
    account = make_account(rt)
    make_caller(rt, account.id)
    result = _verify(rt)
    assert result.ok, result.line()
    assert result.entries >= 3


def test_one_changed_byte_is_found_and_named(rt: Runtime) -> None:
    account = make_account(rt)
    for i in range(3):
        make_caller(rt, account.id, first=f"Prenom{i}")
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        target = s.scalars(select(AuditEntry).order_by(AuditEntry.seq).offset(2).limit(1)).one()
    tampered = target.body.replace('"action":"', '"action":"X', 1)
    assert tampered != target.body
    _raw(rt, "UPDATE audit_log SET body = :b WHERE seq = :s", b=tampered, s=target.seq)
    result = _verify(rt)
    assert not result.ok
    assert result.broken_seq == target.seq
    assert f"entry {target.seq}" in result.line()


def test_a_deleted_last_entry_is_found(rt: Runtime) -> None:
    account = make_account(rt)
    make_caller(rt, account.id)
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        last = s.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))
    _raw(rt, "DELETE FROM audit_log WHERE seq = :s", s=last)
    assert not _verify(rt).ok


@pytest.mark.gdpr("Art. 5(2)")
def test_rewritten_chain_is_caught_by_an_exported_checkpoint(rt: Runtime) -> None:
    account = make_account(rt)
    make_caller(rt, account.id)
    with rt.db.session(AccessContext.system("test")) as s:
        cp = integrity.create_checkpoint(s, rt.keyring)
    exported = json.loads(json.dumps(cp))
    # An attacker with database rights rewrites every entry and recomputes every hash...
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        rows = s.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        entries = [(r.seq, r.body) for r in rows]
    prev = "0" * 64
    for seq, body in entries:
        body = body.replace('"role":"admin"', '"role":"system"')
        h = audit.entry_hash(prev, seq, body)
        _raw(
            rt,
            "UPDATE audit_log SET body=:b, prev_hash=:p, hash=:h WHERE seq=:s",
            b=body,
            p=prev,
            h=h,
            s=seq,
        )
        prev = h
    _raw(rt, "UPDATE audit_head SET hash=:h", h=prev)
    _raw(rt, "DELETE FROM audit_checkpoints")
    # ...so the chain is internally consistent, but the checkpoint kept elsewhere disagrees.
    assert _verify(rt).ok
    result = _verify(rt, [exported])
    assert not result.ok
    assert "checkpoint" in (result.problem or "")


def test_forged_checkpoint_signature_is_refused(rt: Runtime) -> None:
    account = make_account(rt)
    make_caller(rt, account.id)
    with rt.db.session(AccessContext.system("test")) as s:
        cp = integrity.create_checkpoint(s, rt.keyring)
    forged = dict(cp, created_at="2020-01-01T00:00:00+00:00")
    assert not _verify(rt, [forged]).ok


def test_rolled_back_change_leaves_no_entry(rt: Runtime) -> None:
    account = make_account(rt)
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        before = s.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))
    with pytest.raises(RuntimeError), rt.db.session(ctx_for(account.id)) as s:
        audit.record(s, "subject.read", "caller", "x")
        raise RuntimeError("boom")
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        after = s.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))
    assert after == before
    assert _verify(rt).ok


def test_entries_are_written_before_a_query_and_at_commit(rt: Runtime) -> None:
    """Entries are held until the transaction's commit, or a statement on the audit tables
    (one multi-row INSERT), never lost: a query of the log in the same transaction sees them,
    the chain then verifies."""
    account = make_account(rt)
    with rt.db.session(ctx_for(account.id)) as s:
        audit.record(s, "subject.read", "caller", "one")
        audit.record(s, "subject.read", "caller", "two")
        seen = s.scalars(select(AuditEntry.body).where(AuditEntry.action == "subject.read")).all()
        assert [json.loads(b)["object"] for b in seen] == ["caller:one", "caller:two"]
        audit.record(s, "subject.read", "caller", "three")
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        stored = s.scalars(select(AuditEntry.body).where(AuditEntry.action == "subject.read")).all()
    assert [json.loads(b)["object"] for b in stored] == [
        "caller:one",
        "caller:two",
        "caller:three",
    ]
    assert _verify(rt).ok


def _read_in_union(s: Session) -> int:
    mine = select(AuditEntry.seq).where(AuditEntry.action == "subject.read")
    return len(s.execute(union(select(func.length(Account.slug)).where(false()), mine)).all())


def _read_in_where(s: Session) -> int:
    mine = select(AuditEntry.actor_id).where(AuditEntry.action == "subject.read")
    return s.scalar(select(func.count(Account.id)).where(exists(mine))) or 0


def _read_in_a_cte(s: Session) -> int:
    mine = select(AuditEntry.seq).where(AuditEntry.action == "subject.read").cte("mine")
    return s.scalar(select(func.count()).where(Account.id.is_not(None), exists(select(mine))))


def _read_in_a_column(s: Session) -> int:
    n = select(func.count(AuditEntry.seq)).where(AuditEntry.action == "subject.read")
    return s.scalar(select(n.scalar_subquery())) or 0


@pytest.mark.parametrize(
    ("read", "expected"),
    [(_read_in_union, 2), (_read_in_where, 1), (_read_in_a_cte, 1), (_read_in_a_column, 2)],
)
def test_a_compound_statement_reading_the_log_sees_the_transactions_entries(
    rt: Runtime, read: Callable[[Session], int], expected: int
) -> None:
    """The log read through a UNION, a subquery of WHERE, a CTE or a column's subquery: the
    pending entries are written first (before: the statement was not seen as the log's, it
    found none of them), and the chain verifies."""
    account = make_account(rt)
    with rt.db.session(ctx_for(account.id)) as s:
        audit.record(s, "subject.read", "caller", "one")
        audit.record(s, "subject.read", "caller", "two")
        assert read(s) == expected
    assert _verify(rt).ok


def test_an_entry_stamped_on_the_whole_second_verifies(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """isoformat() drops zero microseconds: such a body misses verify's quick text test and is
    checked field by field, where it holds."""
    import datetime as dt

    account = make_account(rt)
    whole = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    monkeypatch.setattr(audit, "utcnow", lambda: whole)
    with rt.db.session(ctx_for(account.id)) as s:
        audit.record(s, "subject.read", "caller", "x", subject_id=account.id)
    monkeypatch.undo()
    result = _verify(rt)
    assert result.ok, result.line()


def test_free_text_is_refused_in_audit_details(rt: Runtime) -> None:
    account = make_account(rt)
    with pytest.raises(ValueError, match="code"), rt.db.session(ctx_for(account.id)) as s:
        audit.record(s, "message.create", "message", details={"note": "Marie Dupont a appelé"})


def test_indexed_columns_must_agree_with_the_hashed_body(rt: Runtime) -> None:
    account = make_account(rt)
    make_caller(rt, account.id)
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.subject_id.is_not(None))).first()
        assert entry is not None
    # Pointing an entry at another subject (to hide who was read) is caught.
    _raw(rt, "UPDATE audit_log SET subject_id = NULL WHERE seq = :s", s=entry.seq)
    result = _verify(rt)
    assert not result.ok and result.broken_seq == entry.seq


def test_every_column_of_the_log_is_covered_by_verify() -> None:
    assert set(AuditEntry.__table__.columns.keys()) == set(integrity.COVERED_COLUMNS)


@pytest.mark.gdpr("Art. 5(2)")
@pytest.mark.parametrize(
    ("column", "sql"),
    [
        ("ts", "UPDATE audit_log SET ts = :t WHERE seq = :s"),
        ("action", "UPDATE audit_log SET action = 'subject.export' WHERE seq = :s"),
        ("actor_id", "UPDATE audit_log SET actor_id = NULL WHERE seq = :s"),
        ("subject_id", "UPDATE audit_log SET subject_id = NULL WHERE seq = :s"),
        ("prev_hash", "UPDATE audit_log SET prev_hash = :h WHERE seq = :s"),
        ("body", "UPDATE audit_log SET body = replace(body, 'caller', 'callee') WHERE seq = :s"),
    ],
)
def test_an_altered_column_is_named_with_its_entry(rt: Runtime, column: str, sql: str) -> None:
    """Breach scoping and the DPO's date filters read ts: moving an entry in time is found."""
    import datetime as dt

    account = make_account(rt)
    make_caller(rt, account.id)
    ctx = AccessContext(
        role=ctx_for(account.id).role, reason="test", actor_id=account.id, account_id=account.id
    )
    with rt.db.session(ctx) as s:
        audit.record(s, "caller.read", "caller", "x", subject_id=account.id)
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        target = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()
        assert target.actor_id and target.subject_id
        more = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(2)).all()
    assert _verify(rt).ok
    earlier = target.ts - dt.timedelta(days=3)
    params = {"s": target.seq, "t": earlier, "h": more[1].hash[::-1]}
    if rt.db.is_postgres is False and column == "ts":
        params["t"] = earlier.replace(tzinfo=None).isoformat(sep=" ")
    _raw(rt, sql, **{k: v for k, v in params.items() if f":{k}" in sql})
    result = _verify(rt)
    assert not result.ok
    assert result.broken_seq == target.seq
    assert result.column == column
    assert f"entry {target.seq}" in result.line() and f"column {column}" in result.line()


@pytest.mark.gdpr("Art. 5(2)")
def test_a_cut_tail_is_found_against_the_published_checkpoints(
    rt: Runtime, settings: Settings
) -> None:
    """The owner deletes the last entries and rewinds the head consistently: the chain is
    internally sound, but the checkpoint 'serve' published a few minutes ago says more."""
    from permanence.audit import publish
    from tests.conftest import cli_env, run_cli

    env = cli_env(settings)

    account = make_account(rt)
    make_caller(rt, account.id)
    assert publish.checkpoint_if_grown(rt) is not None
    assert publish.checkpoint_if_grown(rt) is None  # nothing new: nothing signed
    make_caller(rt, account.id, first="Autre")
    cp = publish.checkpoint_if_grown(rt)
    assert cp is not None
    lines = publish.read(rt.settings.effective_audit_checkpoint_file)
    assert [c["seq"] for c in lines] == [lines[0]["seq"], cp["seq"]]
    assert run_cli(env, "audit", "verify").returncode == 0
    keep = int(lines[0]["seq"])
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        kept_hash = s.scalar(select(AuditEntry.hash).where(AuditEntry.seq == keep))
    _raw(rt, "DELETE FROM audit_checkpoints WHERE seq > :k", k=keep)
    _raw(rt, "DELETE FROM audit_log WHERE seq > :k", k=keep)
    _raw(rt, "UPDATE audit_head SET seq = :k, hash = :h", k=keep, h=kept_hash)
    assert _verify(rt).ok  # inside the database, nothing shows
    done = run_cli(env, "audit", "verify")
    assert done.returncode == 1
    assert f"checkpoint at {cp['seq']} is beyond the chain head" in done.stderr + done.stdout


def test_serve_publishes_checkpoints_on_its_own(rt: Runtime) -> None:
    import time

    from permanence.audit.publish import Checkpointer, read

    account = make_account(rt)
    worker = Checkpointer(rt, 0.05)
    worker.start()
    try:
        path = rt.settings.effective_audit_checkpoint_file
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        make_caller(rt, account.id)
        while len(read(path)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    published = read(path)
    assert len(published) == 2
    assert _verify(rt, published).checkpoints >= 2
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_an_audit_head_read_in_the_transaction_follows_its_entries(rt: Runtime) -> None:
    """Entries wait for the commit; an AuditHead already loaded in the transaction is
    reloaded when read after one is recorded (the entries are written first)."""
    from permanence.audit.model import AuditHead

    account = make_account(rt)
    with rt.db.session(ctx_for(account.id)) as s:
        head = s.get(AuditHead, 1)
        assert head is not None
        before = head.seq
        audit.record(s, "subject.read", "caller", "one")
        audit.record(s, "subject.read", "caller", "two")
        again = s.get(AuditHead, 1)
        assert again is not None and again.seq == before + 2
        last = s.scalar(select(AuditEntry.hash).where(AuditEntry.seq == before + 2))
        assert again.hash == last
    assert _verify(rt).ok


@pytest.mark.skipif(not PG_URL, reason="two writers at once: PostgreSQL (SQLite has one writer)")
def test_a_slow_transaction_does_not_hold_back_another_ones_audit_entries(rt: Runtime) -> None:
    """Issue 24: the chain head is locked at commit, not at the first entry. A transaction
    that recorded entries and is still working (it waits here, before its commit) does not
    hold back another one, which records and commits meanwhile; the chain is then whole."""
    import threading

    account = make_account(rt)
    make_caller(rt, account.id)
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        start = s.scalar(select(func.max(AuditEntry.seq))) or 0
    slow_recorded, fast_committed = threading.Event(), threading.Event()
    order: list[str] = []
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            with rt.db.session(ctx_for(account.id)) as s:
                audit.record(s, "subject.read", "caller", "slow1")
                s.flush()
                s.scalars(select(Account.id)).all()  # other work, queries, in the transaction
                audit.record(s, "subject.read", "caller", "slow2")
                order.append("slow recorded")
                slow_recorded.set()
                # Still working while the other transaction records and commits.
                if fast_committed.wait(20):
                    order.append("slow saw the fast commit")
            order.append("slow committed")
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
            slow_recorded.set()

    def fast() -> None:
        try:
            assert slow_recorded.wait(20)
            with rt.db.session(ctx_for(account.id)) as s:
                audit.record(s, "subject.read", "caller", "fast1")
                audit.record(s, "subject.read", "caller", "fast2")
            order.append("fast committed")
            fast_committed.set()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=slow), threading.Thread(target=fast)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert order == [
        "slow recorded",
        "fast committed",
        "slow saw the fast commit",
        "slow committed",
    ]
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        rows = s.execute(
            select(AuditEntry.seq, AuditEntry.body)
            .where(AuditEntry.seq > start)
            .order_by(AuditEntry.seq)
        ).all()
    assert [r.seq for r in rows] == list(range(start + 1, start + 5))  # contiguous
    # The fast transaction committed first: its entries come first in the chain.
    assert [json.loads(r.body)["object"] for r in rows] == [
        "caller:fast1",
        "caller:fast2",
        "caller:slow1",
        "caller:slow2",
    ]
    result = _verify(rt)
    assert result.ok, result.line()
    assert result.head_seq == start + 4


def test_the_head_key_is_the_identity_maps() -> None:
    from sqlalchemy.orm.util import identity_key

    from permanence.audit.model import AuditHead

    assert identity_key(AuditHead, 1) == audit._HEAD_KEY
