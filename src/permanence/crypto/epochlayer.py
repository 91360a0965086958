"""The erasure-epoch layer of the subject keys (ADR 0029), a part of the keyring.

A subject's data key, wrapped by its account's KEK, is wrapped again under the key of the
current erasure epoch, which lives in a file outside the database (crypto/epochs.py). A
rotation re-wraps every subject key under a new epoch, then destroys the older epochs' keys:
the copies of an erased subject's key that the database's files still hold open no more.
Epoch 0 means no outer layer (a keyring made without an epoch file).
"""

from __future__ import annotations

import time
import uuid
from typing import cast

from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from permanence.context import AccessContext
from permanence.crypto.epochs import EpochKeys
from permanence.crypto.model import KeyEpoch, SubjectKey
from permanence.crypto.primitives import open_sealed, seal
from permanence.db import Database, utcnow
from permanence.errors import ConfigurationError, KeyUnavailable

# The epoch new subject keys are wrapped under: the newest not retired. On PostgreSQL its row
# is share-locked until the transaction ends (see _current_epoch).
_CURRENT_EPOCH = (
    select(KeyEpoch.epoch)
    .where(KeyEpoch.retired_at.is_(None))
    .order_by(KeyEpoch.epoch.desc())
    .limit(1)
)
_CURRENT_EPOCH_SHARED = _CURRENT_EPOCH.with_for_update(read=True)


class EpochLayer:
    """The outer wrapping of subject keys and its rotation; ``Keyring`` inherits it."""

    # None: no epoch layer (a keyring used without settings); new keys get epoch 0.
    epochs: EpochKeys | None

    @staticmethod
    def _epoch_ad(account_id: uuid.UUID, subject_id: uuid.UUID, epoch: int) -> bytes:
        return f"epoch|{account_id}|{subject_id}|{epoch}".encode()

    def _outer_seal(
        self, account_id: uuid.UUID, subject_id: uuid.UUID, epoch: int, inner: bytes
    ) -> bytes:
        if epoch == 0:
            return inner
        key = self.epochs.get(epoch) if self.epochs is not None else None
        if key is None:
            raise KeyUnavailable("the erasure epoch's key is not available")
        return seal(key, inner, self._epoch_ad(account_id, subject_id, epoch))

    def _outer_open(self, sk: SubjectKey, account_id: uuid.UUID) -> bytes:
        """The KEK-wrapped key inside the epoch layer; KeyUnavailable once the epoch's key
        was destroyed (the row is a residue of before the last rotation)."""
        return self._outer_open_raw(account_id, sk.subject_id, sk.epoch, sk.wrapped_dek)

    def _outer_open_raw(
        self, account_id: uuid.UUID, subject_id: uuid.UUID, epoch: int, wrapped: bytes
    ) -> bytes:
        if epoch == 0:
            return bytes(wrapped)
        key = self.epochs.get(epoch) if self.epochs is not None else None
        if key is None:
            raise KeyUnavailable("the erasure epoch of this data key was destroyed")
        return open_sealed(key, wrapped, self._epoch_ad(account_id, subject_id, epoch))

    def _current_epoch(self, session: Session) -> int:
        """The epoch new subject keys are wrapped under, for this transaction.

        PostgreSQL: its row is share-locked until the transaction ends, so a rotation (which
        retires it with an UPDATE) waits for every transaction that wraps under it: once the
        rotation committed, no key can still be added under the old epoch. A transaction
        that waited finds the row retired and reads the new one. SQLite has one writer."""
        if self.epochs is None:
            return 0
        cached = session.info.get("key_epoch")
        if isinstance(cached, int):
            return cached
        pg = session.get_bind().dialect.name == "postgresql"
        # Prebuilt, and run on the transaction's connection: once per transaction that makes a
        # key, through the ORM it cost more than the plain insert it precedes (bench.crypto_insert).
        q = _CURRENT_EPOCH_SHARED if pg else _CURRENT_EPOCH
        for _ in range(3):
            epoch = session.connection().scalar(q)
            if epoch is not None:
                break
            if session.scalar(select(func.count()).select_from(KeyEpoch)) == 0:
                self._first_epoch(session, pg)
        if epoch is None:
            raise KeyUnavailable("no current erasure epoch (a rotation is stuck?)")
        session.info["key_epoch"] = epoch
        return epoch

    def _first_epoch(self, session: Session, pg: bool) -> None:
        """Epoch 1, on first use: its key made in the file first, then its row."""
        assert self.epochs is not None
        self.epochs.ensure(1)
        if pg:
            session.execute(
                text(
                    "INSERT INTO key_epochs (epoch, created_at) VALUES (1, :now) "
                    "ON CONFLICT (epoch) DO NOTHING"
                ),
                {"now": utcnow()},
            )
        else:
            session.add(KeyEpoch(epoch=1, created_at=utcnow()))
            session.flush()

    def rotate_epoch(
        self, db: Database, *, batch: int = 1000, grace: float = 2.0
    ) -> dict[str, int]:
        """A new erasure epoch: every subject key re-wrapped under it, the older epochs' keys
        destroyed in the epoch file. Several transactions (one per batch): safe to run while
        the service runs, and to run again after a crash. Returns the counts."""
        if self.epochs is None:
            raise ConfigurationError("this keyring has no erasure-epoch key file")
        with self.epochs.rotation_lock():
            return self._rotate_epoch(db, self.epochs, batch, grace)

    def epoch_rotation_due(self, db: Database, delay: float, max_age: float) -> str | None:
        """Why a rotation is due now ("erasure", "schedule"), or None. ``delay``: seconds
        after the first erasure not yet covered; ``max_age``: the epoch's age (0: never)."""
        if self.epochs is None:
            return None
        since = self.epochs.due_since()
        if since is not None and time.time() - since >= delay:
            return "erasure"
        if max_age:
            with db.session(AccessContext.system("keys:epoch-rotation"), readonly=True) as s:
                created = s.scalar(select(KeyEpoch.created_at).where(KeyEpoch.retired_at.is_(None)))
            if created is not None and (utcnow() - created).total_seconds() >= max_age:
                return "schedule"
        return None

    def _rotate_epoch(
        self, db: Database, epochs: EpochKeys, batch: int, grace: float
    ) -> dict[str, int]:
        system = AccessContext.system("keys:epoch-rotation")
        epochs.take_due()
        # 1. Retire the current epoch (waits for the transactions wrapping under it), open a
        #    new one: its key written to the file before its row commits.
        with db.session(system) as s:
            pg = s.get_bind().dialect.name == "postgresql"
            current = s.scalars(
                select(KeyEpoch).where(KeyEpoch.retired_at.is_(None)).with_for_update()
            ).all()
            known = s.scalar(select(func.max(KeyEpoch.epoch))) or 0
            new = max(known, epochs.highest()) + 1
            for row in current:
                row.retired_at = utcnow()
            s.flush()
            epochs.ensure(new)
            s.add(KeyEpoch(epoch=new, created_at=utcnow()))
            s.flush()
            accounts = [uuid.UUID(str(a)) for a in s.scalars(text("SELECT id FROM accounts"))]
        # 2. Re-wrap every key under an older epoch (or none), account by account, in batches.
        rewrapped = 0
        new_key_ = epochs.get(new)
        assert new_key_ is not None
        table = cast(Table, SubjectKey.__table__)
        cols = (table.c.subject_id, table.c.epoch, table.c.wrapped_dek)
        # Core statements: the ORM's bulk machinery doubled the cost per key (bench).
        rewrap = (
            table.update()
            .where(table.c.subject_id == bindparam("sid"))
            .values(epoch=new, wrapped_dek=bindparam("w"))
        )
        for account_id in accounts:
            ctx = AccessContext.system("keys:epoch-rotation", account_id=account_id)
            prefix = f"epoch|{account_id}|"
            while True:  # each batch leaves the range it read: (account, epoch < new) indexed
                with db.session(ctx) as s:
                    rows = s.execute(
                        select(*cols)
                        .where(table.c.account_id == account_id, table.c.epoch < new)
                        .limit(batch)
                    ).all()
                    if rows:
                        s.connection().execute(
                            rewrap,
                            [
                                {
                                    "sid": sid,
                                    "w": seal(
                                        new_key_,
                                        self._outer_open_raw(account_id, sid, epoch, w),
                                        f"{prefix}{sid}|{new}".encode(),
                                    ),
                                }
                                for sid, epoch, w in rows
                            ],
                        )
                    rewrapped += len(rows)
                if len(rows) < batch:
                    break
        # 3. Destroy the older epochs' keys. A reader whose snapshot predates the re-wrap
        #    gets ``grace`` seconds to finish with the old key first.
        with db.session(system) as s:
            older = set(
                s.scalars(
                    select(KeyEpoch.epoch).where(
                        KeyEpoch.epoch < new, KeyEpoch.destroyed_at.is_(None)
                    )
                ).all()
            )
        if grace and older:
            time.sleep(grace)
        stale = {e for e in epochs.epochs() if e < new}
        destroyed = epochs.destroy(older | stale)
        with db.session(system) as s:
            s.execute(
                update(KeyEpoch)
                .where(KeyEpoch.epoch < new, KeyEpoch.destroyed_at.is_(None))
                .values(destroyed_at=utcnow())
            )
        epochs.done_due()
        if not pg:
            db.shred_residue()
        return {"epoch": new, "rewrapped": rewrapped, "destroyed": destroyed}
