"""Erasure epochs (ADR 0029): subject keys wrapped under a key kept outside the database,
rotated after erasures; the old epoch's key destroyed, so a deleted key's residue opens no more."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest
from sqlalchemy import select

from permanence.config import Settings
from permanence.crypto.model import KeyEpoch, SubjectKey
from permanence.errors import IntegrityFailure, KeyUnavailable
from permanence.runtime import Runtime
from permanence.subjects import service as subjects
from tests.conftest import cli_env, run_cli
from tests.factories import ctx_for, make_account, make_caller


def _keys(rt: Runtime, account_id: uuid.UUID) -> dict[uuid.UUID, tuple[int, bytes]]:
    with rt.db.session(ctx_for(account_id), readonly=True) as s:
        return {
            k.subject_id: (k.epoch, bytes(k.wrapped_dek))
            for k in s.scalars(select(SubjectKey).where(SubjectKey.account_id == account_id))
        }


def _name(rt: Runtime, account_id: uuid.UUID, caller_id: uuid.UUID) -> str:
    with rt.db.session(ctx_for(account_id)) as s:
        caller = subjects.get(s, caller_id)
        return subjects.identity(s, rt.keyring, caller, audited=False).last_name


def test_rotation_rewraps_survivors_and_destroys_the_old_epoch(rt: Runtime) -> None:
    assert rt.keyring.epochs is not None
    account = make_account(rt)
    ids = [make_caller(rt, account.id, last=f"Martin{i}", phone=None) for i in range(3)]
    before = _keys(rt, account.id)
    assert {e for e, _ in before.values()} == {1}
    assert rt.keyring.epochs.epochs() == {1}
    # Nothing erased yet: no rotation due (the schedule is a week away).
    assert rt.keyring.epoch_rotation_due(rt.db, 0, 7 * 86400) is None

    with rt.db.session(ctx_for(account.id)) as s:
        assert rt.keyring.destroy_subject_key(s, account.id, ids[0])
    assert rt.keyring.epoch_rotation_due(rt.db, 0, 0) == "erasure"
    assert rt.keyring.epoch_rotation_due(rt.db, 3600, 0) is None  # debounced

    done = rt.keyring.rotate_epoch(rt.db, grace=0)
    assert done == {"epoch": 2, "rewrapped": 2, "destroyed": 1}
    after = _keys(rt, account.id)
    assert set(after) == set(ids[1:])
    assert all(epoch == 2 and wrapped != before[i][1] for i, (epoch, wrapped) in after.items())
    # The survivors read as before; the old epoch is gone from the file and the table says so.
    assert [_name(rt, account.id, i) for i in ids[1:]] == ["Martin1", "Martin2"]
    assert rt.keyring.epochs.epochs() == {2}
    with rt.db.session(ctx_for(account.id), readonly=True) as s:
        rows = {e.epoch: e for e in s.scalars(select(KeyEpoch))}
    assert rows[1].retired_at is not None and rows[1].destroyed_at is not None
    assert rows[2].retired_at is None and rows[2].destroyed_at is None
    assert rt.keyring.epoch_rotation_due(rt.db, 0, 7 * 86400) is None
    # A new caller is wrapped under the new epoch.
    new = make_caller(rt, account.id, last="Nouveau", phone=None)
    assert _keys(rt, account.id)[new][0] == 2
    # The erased caller's old row (what a dead tuple holds) opens with no key there is.
    erased = SubjectKey(
        subject_id=ids[0], account_id=account.id, kek_version=1, epoch=1,
        wrapped_dek=before[ids[0]][1],
    )  # fmt: skip
    with pytest.raises(KeyUnavailable):
        rt.keyring._outer_open(erased, account.id)
    for e in (1, 2):
        erased.epoch = e
        rt.keyring.epochs._keys.clear()  # whatever the process had: the file only
        rt.keyring.epochs._stamp = None
        key = rt.keyring.epochs.get(2)
        assert key is not None
        with pytest.raises(IntegrityFailure):
            from permanence.crypto.primitives import open_sealed

            open_sealed(key, erased.wrapped_dek, rt.keyring._epoch_ad(account.id, ids[0], e))
    # The epoch file holds no old key bytes: it was rewritten and the old one wiped.
    assert os.stat(rt.keyring.epochs.path).st_mode & 0o777 == 0o600


def test_rows_from_before_the_epochs_are_wrapped_by_the_first_rotation(rt: Runtime) -> None:
    account = make_account(rt)
    caller = make_caller(rt, account.id, last="Ancien", phone=None)
    with rt.db.session(ctx_for(account.id)) as s:  # a row as revision 0087 left it
        sk = s.get(SubjectKey, caller)
        assert sk is not None
        sk.wrapped_dek = rt.keyring._outer_open(sk, account.id)
        sk.epoch = 0
    assert _name(rt, account.id, caller) == "Ancien"
    done = rt.keyring.rotate_epoch(rt.db, grace=0)
    assert done["rewrapped"] == 1 and _keys(rt, account.id)[caller][0] == done["epoch"]
    assert _name(rt, account.id, caller) == "Ancien"


def test_a_key_row_read_just_before_a_rotation_is_read_again_not_taken_for_erased(
    rt: Runtime,
) -> None:
    """A session holding a subject key's row as it was before a rotation re-wrapped it and
    destroyed its epoch (PostgreSQL: read a moment before the rotation committed) reads the
    row again and opens the key, rather than calling the caller erased; the key is then
    cached under the row as it is now."""
    account = make_account(rt)
    cid = make_caller(rt, account.id, last="Lecteur", phone=None)
    with rt.db.session(ctx_for(account.id), readonly=True) as s:
        stale = s.get(SubjectKey, cid)
        expected = rt.keyring.cipher(s, account.id, cid).dek
    assert stale is not None and stale.epoch == 1
    assert rt.keyring.rotate_epoch(rt.db, grace=0)["epoch"] == 2
    fresh = Runtime.from_settings(rt.settings)  # nothing in its key cache
    try:
        with fresh.db.session(ctx_for(account.id), readonly=True) as s:
            # The row as that session had read it (held: the identity map keeps it while used).
            held = s.merge(stale, load=False)
            assert s.get(SubjectKey, cid) is held and held.epoch == 1
            assert fresh.keyring.cipher(s, account.id, cid).dek == expected
            assert held.epoch == 2  # read again
            assert list(fresh.keyring._deks) == [(cid, held.wrapped_dek)]
            caller = subjects.get(s, cid)
            assert subjects.identity(s, fresh.keyring, caller, audited=False).last_name == (
                "Lecteur"
            )
    finally:
        fresh.close()


@pytest.mark.skipif(
    not os.environ.get("PERMANENCE_TEST_DATABASE_URL"), reason="PostgreSQL: concurrent writers"
)
def test_a_key_being_created_under_the_old_epoch_is_not_left_behind(rt: Runtime) -> None:
    """The rotation waits for a transaction wrapping under the epoch it retires, then
    re-wraps that transaction's key too: none is left under a destroyed epoch."""
    account = make_account(rt)
    make_caller(rt, account.id, last="Premier", phone=None)
    entered, release = threading.Event(), threading.Event()
    made: list[uuid.UUID] = []

    def slow_registration() -> None:
        with rt.db.session(ctx_for(account.id)) as s:
            caller, _ = subjects.register(
                s, rt.keyring, subjects.Identity(first_name="Lent", last_name="Lent")
            )
            made.append(caller.id)
            entered.set()
            release.wait(10)

    writer = threading.Thread(target=slow_registration)
    writer.start()
    assert entered.wait(10)
    result: list[dict[str, int]] = []
    rotation = threading.Thread(target=lambda: result.append(rt.keyring.rotate_epoch(rt.db)))
    rotation.start()
    time.sleep(0.5)
    assert not result  # waiting for the registration's epoch lock
    release.set()
    writer.join(10)
    rotation.join(30)
    assert result and result[0]["epoch"] == 2
    keys = _keys(rt, account.id)
    assert {e for e, _ in keys.values()} == {2}
    assert _name(rt, account.id, made[0]) == "Lent"


@pytest.mark.skipif(
    not os.environ.get("PERMANENCE_TEST_DATABASE_URL"), reason="PostgreSQL: concurrent writers"
)
def test_transactions_wrapping_under_the_epoch_do_not_wait_for_each_other(rt: Runtime) -> None:
    """The current epoch's row is share-locked by the transactions that wrap under it (what
    a rotation waits for), not locked for update: a registration does not queue behind
    another one that is still open."""
    account = make_account(rt)
    make_caller(rt, account.id, last="Premier", phone=None)
    entered, release = threading.Event(), threading.Event()

    def open_registration() -> None:
        with rt.db.session(ctx_for(account.id)) as s:
            subjects.register(s, rt.keyring, subjects.Identity(first_name="A", last_name="Ouvert"))
            entered.set()
            release.wait(10)

    writer = threading.Thread(target=open_registration)
    writer.start()
    try:
        assert entered.wait(10)
        other = threading.Thread(
            target=lambda: make_caller(rt, account.id, last="Second", phone=None)
        )
        other.start()
        other.join(5)
        assert not other.is_alive()  # it committed while the first is still open
    finally:
        release.set()
        writer.join(10)
    assert {e for e, _ in _keys(rt, account.id).values()} == {1}


def test_rotate_epoch_command(rt: Runtime) -> None:
    account = make_account(rt)
    make_caller(rt, account.id, phone=None)
    env = cli_env(rt.settings)
    proc = run_cli(env, "keys", "rotate-epoch", "--if-due")
    assert proc.returncode == 0 and "no erasure-epoch rotation due" in proc.stdout
    proc = run_cli(env, "keys", "rotate-epoch")
    assert proc.returncode == 0, proc.stderr
    assert "erasure epoch 2: 1 data keys re-wrapped, 1 old epoch key(s) destroyed" in proc.stdout
    from permanence.audit.model import AuditEntry

    with rt.db.session(ctx_for(account.id), readonly=True) as s:
        actions = [a.action for a in s.scalars(select(AuditEntry))]
    assert "keys.epoch_rotate" in actions


def test_serve_rotates_once_the_erasures_have_waited_the_delay(rt: Runtime) -> None:
    """The rotator 'serve' runs: nothing before the delay, one rotation for the erasures made
    until then (audited through its callback), nothing more until a new erasure."""
    from permanence.crypto.rotation import EpochRotator

    account = make_account(rt)
    ids = [make_caller(rt, account.id, last=f"Martin{i}", phone=None) for i in range(3)]
    seen: list[tuple[str, dict[str, int]]] = []
    rotator = EpochRotator(
        rt.db, rt.keyring, delay=0.3, max_age=0, on_rotated=lambda r, d: seen.append((r, d))
    )
    assert rotator.run_once() is None  # no erasure yet
    with rt.db.session(ctx_for(account.id)) as s:
        rt.keyring.destroy_subject_key(s, account.id, ids[0])
    assert rotator.run_once() is None  # within the delay: erasures are batched
    with rt.db.session(ctx_for(account.id)) as s:
        rt.keyring.destroy_subject_key(s, account.id, ids[1])
    time.sleep(0.35)
    done = rotator.run_once()
    assert done is not None and done["rewrapped"] == 1 and done["epoch"] == 2
    assert [r for r, _ in seen] == ["erasure"]
    assert rotator.run_once() is None and len(seen) == 1
    # On a schedule: an epoch older than max_age is rotated with no erasure.
    scheduled = EpochRotator(rt.db, rt.keyring, delay=0.3, max_age=0.001)
    time.sleep(0.01)
    assert scheduled.run_once() is not None
    assert rt.keyring.epochs is not None and rt.keyring.epochs.epochs() == {3}


def test_the_epoch_file_opens_only_with_the_master_key(rt: Runtime) -> None:
    from permanence.crypto.epochs import EpochKeys
    from permanence.errors import ConfigurationError

    account = make_account(rt)
    make_caller(rt, account.id, phone=None)
    assert rt.keyring.epochs is not None
    path = rt.keyring.epochs.path
    raw = path.read_bytes()
    key = rt.keyring.epochs.get(1)
    assert key is not None
    assert len(raw) % 4096 == 0  # padded: an in-place overwrite covers the old content
    with pytest.raises(ConfigurationError, match="does not open with this master key"):
        EpochKeys(path, os.urandom(32)).epochs()
    # The rotation replaces the file, then zeroes the old one's bytes (what a reader still
    # holding it open, or the old blocks on disk, would give).
    with path.open("rb") as old:
        rt.keyring.rotate_epoch(rt.db, grace=0)
        assert old.read() == b"\0" * len(raw)
    for other in path.parent.iterdir():
        if other.is_file():
            assert raw not in other.read_bytes(), other


def test_readiness_refuses_an_epoch_file_without_the_databases_epochs(rt: Runtime) -> None:
    """A wrong or missing epoch file would make every caller read as erased: /readyz says so."""
    from permanence import health

    account = make_account(rt)
    make_caller(rt, account.id, phone=None)
    assert [p.code for p in health.check(rt).problems] == []
    assert rt.keyring.epochs is not None
    path = rt.keyring.epochs.path
    aside = path.rename(path.with_name("aside.key"))
    other = Runtime.from_settings(rt.settings)
    try:
        problems = health.check(other).problems
        assert [p.code for p in problems] == ["epoch_keys_mismatch"]
        assert "lacks the key of epoch(s) 1" in problems[0].message
    finally:
        other.close()
        aside.rename(path)


def test_the_schema_goes_below_0088_only_when_no_key_is_wrapped_under_an_epoch(
    rt: Runtime, settings: Settings
) -> None:
    """Below 0088 the epoch layer does not exist: a key wrapped under it would be lost, so the
    downgrade refuses while one is; an epoch that wraps no key does not hold it back."""
    from alembic import command
    from sqlalchemy import create_engine, pool, text

    from permanence import schema
    from tests.conftest import PG_URL

    account = make_account(rt)
    make_caller(rt, account.id, last="Martin", phone=None)
    rt.close()
    url = settings.effective_migration_url
    cfg = schema.alembic_config(url)
    with pytest.raises(RuntimeError, match="cannot go below 0088"):
        command.downgrade(cfg, "0088-1")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            if PG_URL:
                conn.execute(
                    text("SELECT set_config('app.account_id', :a, true)"), {"a": str(account.id)}
                )
            conn.execute(text("DELETE FROM subject_keys"))
            assert conn.scalar(text("SELECT count(*) FROM key_epochs")) == 1
    finally:
        engine.dispose()
    command.downgrade(cfg, "0088-1")
    schema.upgrade(url, settings.database_app_role)
