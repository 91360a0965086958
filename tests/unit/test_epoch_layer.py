"""The erasure-epoch layer (ADR 0029, crypto/epochlayer.py), rule by rule, without the
application: a bare ``EpochLayer`` over a real epoch file, and a SQLite database holding only
the three tables it reads (accounts, subject_keys, key_epochs).

The outer wrapping is checked against AES-GCM called directly with the associated data
written out by hand (``epoch|<account>|<subject>|<epoch>``), never through ``permanence``:
a change of that layout would leave every wrapped key unreadable by an older or newer
version. When a rotation is due is checked at its boundaries, on a clock the test sets.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import event, func, select, text, update

from permanence.accounts.model import Account, AccountKind
from permanence.context import AccessContext
from permanence.crypto import epochlayer
from permanence.crypto.epochlayer import EpochLayer
from permanence.crypto.epochs import EpochKeys
from permanence.crypto.model import KeyEpoch, SubjectKey
from permanence.db import Base, Database
from permanence.errors import ConfigurationError, IntegrityFailure, KeyUnavailable

MASTER = bytes(range(32))
ACCOUNT = uuid.UUID("11111111-1111-4111-8111-111111111111")
SUBJECT = uuid.UUID("33333333-3333-4333-8333-333333333333")
# The associated data of the outer wrapping, written by hand.
AD_EPOCH_3 = b"epoch|11111111-1111-4111-8111-111111111111|33333333-3333-4333-8333-333333333333|3"
SYSTEM = AccessContext.system("test")


class Layer(EpochLayer):
    def __init__(self, epochs: EpochKeys | None) -> None:
        self.epochs = epochs


@pytest.fixture
def keys(tmp_path: Path) -> EpochKeys:
    return EpochKeys(tmp_path / "keys" / "epochs.key", MASTER)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'epochs.db'}")
    tables = [Base.metadata.tables[n] for n in ("accounts", "subject_keys", "key_epochs")]
    Base.metadata.create_all(database.engine, tables=tables)
    yield database
    database.dispose()


def _raw_key(keys: EpochKeys, epoch: int) -> AESGCM:
    """The epoch's key as the file holds it (raw bytes), not as the layer caches it."""
    return AESGCM(keys.export()[epoch])


def _open_by_hand(key: AESGCM, blob: bytes, ad: bytes) -> bytes:
    assert blob[:1] == b"\x01"
    return key.decrypt(blob[1:13], blob[13:], ad)


# -- the outer wrapping -------------------------------------------------------------------------


def test_the_outer_wrapping_is_aes_gcm_under_the_epoch_key_with_a_known_ad(
    keys: EpochKeys,
) -> None:
    keys.ensure(3)
    layer = Layer(keys)
    inner = b"the KEK-wrapped data key"
    blob = layer._outer_seal(ACCOUNT, SUBJECT, 3, inner)
    assert len(blob) == 1 + 12 + len(inner) + 16
    assert _open_by_hand(_raw_key(keys, 3), blob, AD_EPOCH_3) == inner
    assert layer._epoch_ad(ACCOUNT, SUBJECT, 3) == AD_EPOCH_3
    # Wrapped by hand with that AD: the layer opens it.
    nonce = bytes(12)
    by_hand = b"\x01" + nonce + _raw_key(keys, 3).encrypt(nonce, inner, AD_EPOCH_3)
    assert layer._outer_open_raw(ACCOUNT, SUBJECT, 3, by_hand) == inner
    row = SubjectKey(
        subject_id=SUBJECT, account_id=ACCOUNT, kek_version=1, epoch=3, wrapped_dek=by_hand
    )
    assert layer._outer_open(row, ACCOUNT) == inner


@pytest.mark.parametrize(
    "where",
    [(uuid.UUID(int=1), SUBJECT, 3), (ACCOUNT, uuid.UUID(int=1), 3), (ACCOUNT, SUBJECT, 4)],
    ids=["another account", "another subject", "another epoch"],
)
def test_a_wrapped_key_opens_only_where_it_was_wrapped(
    keys: EpochKeys, where: tuple[uuid.UUID, uuid.UUID, int]
) -> None:
    keys.ensure(3)
    keys.ensure(4)
    layer = Layer(keys)
    blob = layer._outer_seal(ACCOUNT, SUBJECT, 3, b"inner")
    with pytest.raises(IntegrityFailure):
        layer._outer_open_raw(*where, blob)


def test_epoch_zero_is_no_outer_wrapping(keys: EpochKeys) -> None:
    for layer in (Layer(keys), Layer(None)):
        assert layer._outer_seal(ACCOUNT, SUBJECT, 0, b"inner") == b"inner"
        opened = layer._outer_open_raw(ACCOUNT, SUBJECT, 0, memoryview(b"inner"))
        assert opened == b"inner" and type(opened) is bytes
    assert keys.epochs() == set()  # no key was made for it


@pytest.mark.parametrize("epoch", [1, 2, -1])
def test_an_epoch_whose_key_is_not_there_opens_and_wraps_nothing(
    keys: EpochKeys, epoch: int
) -> None:
    """Epoch 2 was destroyed (never made here), -1 is no epoch at all, and a layer with no
    epoch file has no key for epoch 1: a wrapped key then reads as unavailable."""
    keys.ensure(1)
    layer = Layer(keys) if epoch != 1 else Layer(None)
    with pytest.raises(KeyUnavailable, match="destroyed"):
        layer._outer_open_raw(ACCOUNT, SUBJECT, epoch, b"\x01" + bytes(40))
    with pytest.raises(KeyUnavailable, match="not available"):
        layer._outer_seal(ACCOUNT, SUBJECT, epoch, b"inner")


# -- the current epoch --------------------------------------------------------------------------


def test_no_epoch_file_means_epoch_zero_and_no_query(tmp_path: Path) -> None:
    bare = Database(f"sqlite:///{tmp_path / 'empty.db'}")  # no table at all
    try:
        with bare.session(SYSTEM) as s:
            assert Layer(None)._current_epoch(s) == 0
    finally:
        bare.dispose()


def test_the_first_use_makes_epoch_one_in_the_file_then_in_the_table(
    keys: EpochKeys, db: Database
) -> None:
    layer = Layer(keys)
    with db.session(SYSTEM) as s:
        assert layer._current_epoch(s) == 1
    assert keys.epochs() == {1}
    with db.session(SYSTEM, readonly=True) as s:
        rows = s.scalars(select(KeyEpoch)).all()
    assert [(r.epoch, r.retired_at, r.destroyed_at) for r in rows] == [(1, None, None)]
    assert rows[0].created_at.tzinfo is not None
    with db.session(SYSTEM, readonly=True) as s:
        # Written through the ORM on SQLite (the INSERT … ON CONFLICT is PostgreSQL's): naive
        # UTC, as the column type stores every time there, not the driver's "+00:00" text.
        stored = s.scalar(text("SELECT created_at FROM key_epochs"))
    assert isinstance(stored, str) and "+" not in stored
    # Later transactions find it: no second row, no second key.
    with db.session(SYSTEM) as s:
        assert layer._current_epoch(s) == 1
    with db.session(SYSTEM, readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(KeyEpoch)) == 1
    assert keys.epochs() == {1}


def test_the_current_epoch_is_the_highest_not_retired_read_once_per_transaction(
    keys: EpochKeys, db: Database
) -> None:
    layer = Layer(keys)
    now = dt.datetime(2027, 1, 4, 9, tzinfo=dt.UTC)
    with db.session(SYSTEM) as s:
        s.add_all(
            [
                KeyEpoch(epoch=1, created_at=now, retired_at=now),
                KeyEpoch(epoch=2, created_at=now),
                KeyEpoch(epoch=3, created_at=now),
                KeyEpoch(epoch=4, created_at=now, retired_at=now),
            ]
        )
    sent: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    with db.session(SYSTEM) as s:
        assert layer._current_epoch(s) == 3
        assert layer._current_epoch(s) == 3
        # One statement for the transaction (every key made in it asks).
        assert sum("key_epochs" in st for st in sent) == 1
        # A rotation retiring it now does not change what this transaction wraps under.
        s.execute(update(KeyEpoch).where(KeyEpoch.epoch == 3).values(retired_at=now))
        assert layer._current_epoch(s) == 3
    with db.session(SYSTEM) as s:
        assert layer._current_epoch(s) == 2
    assert keys.epochs() == set()  # epochs in the table: none is made in the file


def test_every_epoch_retired_is_a_stuck_rotation_not_a_new_first_epoch(
    keys: EpochKeys, db: Database
) -> None:
    now = dt.datetime(2027, 1, 4, 9, tzinfo=dt.UTC)
    with db.session(SYSTEM) as s:
        s.add(KeyEpoch(epoch=1, created_at=now, retired_at=now))
    with pytest.raises(KeyUnavailable, match="no current erasure epoch"), db.session(SYSTEM) as s:
        Layer(keys)._current_epoch(s)
    with db.session(SYSTEM, readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(KeyEpoch)) == 1
    assert keys.epochs() == set()


# -- when a rotation is due ---------------------------------------------------------------------


def _clock(monkeypatch: pytest.MonkeyPatch, now: float) -> list[float]:
    """The layer's ``time`` module replaced: ``time()`` says ``now``; ``sleep`` is recorded."""
    slept: list[float] = []
    fake = types.SimpleNamespace(time=lambda: now, sleep=slept.append)
    monkeypatch.setattr(epochlayer, "time", fake)
    return slept


def test_no_epoch_file_is_never_due(db: Database) -> None:
    assert Layer(None).epoch_rotation_due(db, 0, 1) is None


def test_an_erasure_makes_a_rotation_due_once_the_delay_has_passed(
    keys: EpochKeys, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = Layer(keys)
    assert layer.epoch_rotation_due(db, 0, 0) is None  # no erasure, no schedule
    keys.due_path.parent.mkdir(parents=True, exist_ok=True)
    keys.due_path.write_text("1000.000\n")
    _clock(monkeypatch, 1599.999)
    assert layer.epoch_rotation_due(db, 600, 0) is None
    _clock(monkeypatch, 1600.0)
    assert layer.epoch_rotation_due(db, 600, 0) == "erasure"
    _clock(monkeypatch, 1000.0)
    assert layer.epoch_rotation_due(db, 0, 0) == "erasure"
    # A mark cut short by a crash (empty) still makes the rotation due, at once.
    keys.due_path.write_text("")
    assert layer.epoch_rotation_due(db, 600, 0) == "erasure"
    keys.due_path.write_text("1000.000\n")
    # The erasure is the reason given when the schedule is due as well.
    with db.session(SYSTEM) as s:
        s.add(KeyEpoch(epoch=1, created_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)))
    assert layer.epoch_rotation_due(db, 0, 60) == "erasure"


def test_the_schedule_makes_a_rotation_due_at_the_current_epochs_age(
    keys: EpochKeys, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = Layer(keys)
    assert layer.epoch_rotation_due(db, 0, 60) is None  # no epoch yet: nothing to rotate
    created = dt.datetime(2027, 1, 4, 9, tzinfo=dt.UTC)
    with db.session(SYSTEM) as s:
        # An older, retired epoch's age does not count.
        s.add(KeyEpoch(epoch=1, created_at=created - dt.timedelta(days=9), retired_at=created))
        s.add(KeyEpoch(epoch=2, created_at=created))
    age = 7 * 86400
    monkeypatch.setattr(epochlayer, "utcnow", lambda: created + dt.timedelta(seconds=age))
    assert layer.epoch_rotation_due(db, 0, age) == "schedule"
    monkeypatch.setattr(epochlayer, "utcnow", lambda: created + dt.timedelta(days=30))
    assert layer.epoch_rotation_due(db, 0, age) == "schedule"  # long past it, still due
    monkeypatch.setattr(epochlayer, "utcnow", lambda: created + dt.timedelta(seconds=age))
    assert layer.epoch_rotation_due(db, 0, 0) is None  # max_age 0: never on a schedule
    just_before = created + dt.timedelta(seconds=age, microseconds=-1)
    monkeypatch.setattr(epochlayer, "utcnow", lambda: just_before)
    assert layer.epoch_rotation_due(db, 0, age) is None


def test_asking_whether_a_rotation_is_due_does_not_wait_for_a_writer(
    keys: EpochKeys, db: Database
) -> None:
    """The rotator asks on a timer: a read, which does not queue behind a transaction that
    writes (SQLite: this process's writers take turns on one lock)."""
    with db.session(SYSTEM) as s:
        s.add(KeyEpoch(epoch=1, created_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)))
    answers: list[str | None] = []
    with db.session(SYSTEM) as s:
        s.add(KeyEpoch(epoch=2, created_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)))
        s.flush()
        asking = threading.Thread(
            target=lambda: answers.append(Layer(keys).epoch_rotation_due(db, 0, 60))
        )
        asking.start()
        asking.join(10)
        answered = not asking.is_alive()
    asking.join(10)
    assert answered and answers == ["schedule"]


# -- the rotation -------------------------------------------------------------------------------


def test_a_layer_without_an_epoch_file_cannot_rotate(db: Database) -> None:
    with pytest.raises(ConfigurationError, match="no erasure-epoch key file"):
        Layer(None).rotate_epoch(db)


def _accounts(db: Database, n: int) -> list[uuid.UUID]:
    ids = [uuid.UUID(int=i + 1) for i in range(n)]
    with db.session(SYSTEM) as s:
        s.add_all(
            Account(id=i, slug=f"a{n}", name="A", kind=AccountKind.OTHER) for n, i in enumerate(ids)
        )
    return ids


def _inner(subject: uuid.UUID) -> bytes:
    return b"inner:" + subject.bytes


def test_a_rotation_rewraps_every_key_in_batches_and_destroys_the_older_epochs(
    keys: EpochKeys, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three keys of one account (a batch of two: two batches, the second short), one of
    another, keys under epoch 1 and from before the epochs (0); the file also holds the key
    of epoch 2, which has no row (a rotation cut short after writing it): the new epoch is 3,
    and the keys of 1 and 2 are destroyed."""
    layer = Layer(keys)
    first, second = _accounts(db, 2)
    subjects = {uuid.UUID(int=100 + i): (first if i < 3 else second) for i in range(4)}
    with db.session(SYSTEM) as s:
        assert layer._current_epoch(s) == 1
    keys.ensure(2)
    with db.session(SYSTEM) as s:
        for i, (sid, account) in enumerate(subjects.items()):
            epoch = 0 if i == 1 else 1
            wrapped = layer._outer_seal(account, sid, epoch, _inner(sid))
            s.add(SubjectKey(subject_id=sid, account_id=account, kek_version=1,
                             epoch=epoch, wrapped_dek=wrapped))  # fmt: skip
    keys.mark_due()
    slept = _clock(monkeypatch, 0.0)

    done = layer.rotate_epoch(db, batch=2)

    assert done == {"epoch": 3, "rewrapped": 4, "destroyed": 2}
    assert slept == [2.0]  # the readers' grace, before destroying
    assert keys.epochs() == {3}
    key3 = _raw_key(keys, 3)
    with db.session(SYSTEM, readonly=True) as s:
        rows = s.scalars(select(SubjectKey)).all()
        epochs = {e.epoch: e for e in s.scalars(select(KeyEpoch))}
    assert len(rows) == 4
    for row in rows:
        ad = f"epoch|{subjects[row.subject_id]}|{row.subject_id}|3".encode()
        assert row.epoch == 3
        assert _open_by_hand(key3, row.wrapped_dek, ad) == _inner(row.subject_id)
    assert sorted(epochs) == [1, 3]
    assert epochs[1].retired_at is not None and epochs[1].destroyed_at is not None
    assert epochs[3].retired_at is None and epochs[3].destroyed_at is None
    assert keys.due_since() is None  # the erasures marked before it are covered
    # SQLite: the WAL that held the old wrappings was copied into the file and emptied.
    assert os.path.getsize(tmp_path / "epochs.db-wal") == 0
    with db.session(SYSTEM) as s:
        assert layer._current_epoch(s) == 3


@pytest.mark.parametrize("count", [2, 4])
def test_a_batch_that_comes_back_full_is_followed_by_another(
    keys: EpochKeys, db: Database, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    layer = Layer(keys)
    (account,) = _accounts(db, 1)
    with db.session(SYSTEM) as s:
        layer._current_epoch(s)
        for i in range(count):
            sid = uuid.UUID(int=200 + i)
            wrapped = layer._outer_seal(account, sid, 1, _inner(sid))
            s.add(SubjectKey(subject_id=sid, account_id=account, kek_version=1, epoch=1,
                             wrapped_dek=wrapped))  # fmt: skip
    _clock(monkeypatch, 0.0)
    assert layer.rotate_epoch(db, batch=2)["rewrapped"] == count
    with db.session(SYSTEM, readonly=True) as s:
        assert set(s.scalars(select(SubjectKey.epoch))) == {2}


def test_a_full_batch_larger_than_the_small_integers_is_followed_by_another(
    keys: EpochKeys, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of 300 (beyond the integers CPython shares, so that a count compared by
    identity would differ): 301 keys take two batches and all are re-wrapped."""
    layer = Layer(keys)
    (account,) = _accounts(db, 1)
    with db.session(SYSTEM) as s:
        layer._current_epoch(s)
        for i in range(301):
            sid = uuid.UUID(int=1000 + i)
            wrapped = layer._outer_seal(account, sid, 1, _inner(sid))
            s.add(SubjectKey(subject_id=sid, account_id=account, kek_version=1, epoch=1,
                             wrapped_dek=wrapped))  # fmt: skip
    _clock(monkeypatch, 0.0)
    assert layer.rotate_epoch(db, batch=300)["rewrapped"] == 301
    with db.session(SYSTEM, readonly=True) as s:
        assert set(s.scalars(select(SubjectKey.epoch))) == {2}


def test_without_grace_or_without_an_older_epoch_the_rotation_does_not_wait(
    keys: EpochKeys, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = Layer(keys)
    slept = _clock(monkeypatch, 0.0)
    # An empty installation: the first rotation makes epoch 1, nothing older to wait for.
    assert layer.rotate_epoch(db) == {"epoch": 1, "rewrapped": 0, "destroyed": 0}
    assert slept == []
    assert layer.rotate_epoch(db, grace=0) == {"epoch": 2, "rewrapped": 0, "destroyed": 1}
    assert slept == []
    with db.session(SYSTEM, readonly=True) as s:
        rows = s.execute(text("SELECT epoch, retired_at IS NULL FROM key_epochs ORDER BY epoch"))
        assert [tuple(r) for r in rows] == [(1, 0), (2, 1)]
