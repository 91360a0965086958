"""The key hierarchy: master key → per-account KEK → per-subject DEK, and the erasure epoch.

The master key lives in a file made at ``init`` (mode 0600), in ``PERMANENCE_MASTER_KEY``, or is
printed by ``PERMANENCE_MASTER_KEY_COMMAND`` (a KMS client unwrapping it; docs/deployment.md).
Account KEKs and index keys are wrapped by it; subject DEKs are wrapped by their account's KEK
with associated data naming the account, the subject and the KEK version, so a wrapped key
cannot be moved to another subject; the result is wrapped again under the current
erasure-epoch key, which lives outside the database (crypto/epochs.py, ADR 0029), so that a
deleted row's residue in the database's files opens no more once the epoch is rotated.
Unwrapped keys are cached per process; the subject-key
row is read on every use, so a key destroyed by another process is never used again here.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shlex
import subprocess
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from permanence.config import Settings
from permanence.context import AccessContext
from permanence.crypto import normalize
from permanence.crypto.epochs import EpochKeys
from permanence.crypto.model import AccountKey, KeyEpoch, SubjectKey
from permanence.crypto.primitives import (
    KEY_LEN,
    blind_index,
    hkdf,
    new_key,
    open_sealed,
    seal,
)
from permanence.db import Database, utcnow
from permanence.errors import ConfigurationError, Conflict, IntegrityFailure, KeyUnavailable

INDEX_EPOCH = 1


def load_master_key(settings: Settings) -> bytes:
    """The master key: ``PERMANENCE_MASTER_KEY``, else the output of
    ``PERMANENCE_MASTER_KEY_COMMAND`` (a KMS client unwrapping it), else the key file."""
    if settings.master_key:
        return decode_key(settings.master_key, "PERMANENCE_MASTER_KEY")
    if settings.master_key_command:
        return decode_key(_run_key_command(settings.master_key_command), KEY_COMMAND)
    path = settings.effective_master_key_file
    if not path.exists():
        raise ConfigurationError(
            f"no master key: {path} does not exist. On an installed host, run commands as "
            "docs/deployment.md says (section 'Running commands by hand') so that "
            "PERMANENCE_MASTER_KEY_FILE names the key; only a new installation runs "
            "'permanence init'"
        )
    return decode_key(path.read_text().strip(), str(path))


KEY_COMMAND = "PERMANENCE_MASTER_KEY_COMMAND"
KEY_COMMAND_TIMEOUT = 60.0


def _run_key_command(command: str) -> str:
    """Run the key command without a shell; its standard output is the base64 key. Failures
    name the command's program and exit status, never its output (it may be the key)."""
    try:
        argv = shlex.split(command)
    except ValueError:
        raise ConfigurationError(f"{KEY_COMMAND} is not a valid command line") from None
    if not argv:
        raise ConfigurationError(f"{KEY_COMMAND} is empty")
    program = Path(argv[0]).name
    try:
        # The operator's own configured command, run without a shell.
        done = subprocess.run(  # noqa: S603
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=KEY_COMMAND_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise ConfigurationError(f"{KEY_COMMAND}: program {program!r} not found") from None
    except PermissionError:
        raise ConfigurationError(f"{KEY_COMMAND}: program {program!r} not executable") from None
    except subprocess.TimeoutExpired:
        raise ConfigurationError(
            f"{KEY_COMMAND}: {program!r} did not answer within {KEY_COMMAND_TIMEOUT:.0f} s"
        ) from None
    if done.returncode != 0:
        raise ConfigurationError(f"{KEY_COMMAND}: {program!r} exited with status {done.returncode}")
    try:
        return done.stdout.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigurationError(f"master key from {KEY_COMMAND} is not valid base64") from None


def create_master_key_file(path: Path) -> bytes:
    """Write a new master key with mode 0600; refuse to overwrite an existing one."""
    return create_key_file(path, "a master key")


def create_key_file(path: Path, what: str) -> bytes:
    """Write a new 32-byte key (base64) with mode 0600; refuse to overwrite a file."""
    if path.exists():
        raise Conflict(f"{path} already exists: refusing to overwrite {what}")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = new_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(key).decode() + "\n")
    return key


def decode_key(text: str, where: str, what: str = "master key") -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{what} in {where} is not valid base64") from None
    if len(key) != KEY_LEN:
        raise ConfigurationError(f"{what} in {where} must be 32 bytes (base64 of 32 bytes)")
    return key


class SubjectCipher:
    """Seals and opens one subject's values, each bound to where it is stored."""

    __slots__ = ("_account", "_aead", "_subject", "account_id", "dek", "subject_id")

    def __init__(self, account_id: uuid.UUID, subject_id: uuid.UUID, dek: bytes) -> None:
        self.account_id = account_id
        self.subject_id = subject_id
        self.dek = dek
        self._aead = AESGCM(dek)
        self._account, self._subject = str(account_id), str(subject_id)

    def ad(self, table: str, column: str, row_id: uuid.UUID | str) -> bytes:
        return f"v1|{self._account}|{table}|{column}|{row_id}|{self._subject}".encode()

    def seal(self, table: str, column: str, row_id: uuid.UUID | str, value: bytes) -> bytes:
        return seal(self._aead, value, self.ad(table, column, row_id))

    def open(self, table: str, column: str, row_id: uuid.UUID | str, blob: bytes) -> bytes:
        return open_sealed(self._aead, blob, self.ad(table, column, row_id))

    def seal_text(self, table: str, column: str, row_id: uuid.UUID | str, value: str) -> bytes:
        return self.seal(table, column, row_id, value.encode())

    def open_text(self, table: str, column: str, row_id: uuid.UUID | str, blob: bytes) -> str:
        return self.open(table, column, row_id, blob).decode()

    def seal_json(self, table: str, column: str, row_id: uuid.UUID | str, value: Any) -> bytes:
        data = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return self.seal(table, column, row_id, data.encode())

    def open_json(self, table: str, column: str, row_id: uuid.UUID | str, blob: bytes) -> Any:
        return json.loads(self.open(table, column, row_id, blob))


class Keyring:
    def __init__(
        self,
        master_key: bytes,
        *,
        index_bits: int = 16,
        region: str = "FR",
        epoch_file: Path | None = None,
    ) -> None:
        if len(master_key) != KEY_LEN:
            raise ConfigurationError("master key must be 32 bytes")
        # None: no epoch layer (a keyring used without settings); new keys get epoch 0.
        self.epochs = EpochKeys(epoch_file, master_key) if epoch_file is not None else None
        self._master_raw = master_key
        self._master = AESGCM(master_key)
        self.index_bits = index_bits
        self.region = region
        self._keks: dict[tuple[uuid.UUID, int], AESGCM] = {}
        self._index_roots: dict[uuid.UUID, bytes] = {}
        self._index_keys: dict[tuple[uuid.UUID, str], bytes] = {}
        self._deks: OrderedDict[tuple[uuid.UUID, bytes], bytes] = OrderedDict()
        self._dek_cache_size = 10_000
        # Active KEK version per account, re-read after a minute: a rotation made by another
        # process is picked up then; until then new DEKs are wrapped under the previous
        # version, which stays readable (retired versions are kept, never deleted).
        self._active: dict[uuid.UUID, tuple[int, float]] = {}
        self.active_ttl = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        return cls(
            load_master_key(settings),
            index_bits=settings.blind_index_bits,
            region=settings.default_region,
            epoch_file=settings.effective_erasure_epoch_file,
        )

    # -- account keys ---------------------------------------------------------------------

    @staticmethod
    def _kek_ad(account_id: uuid.UUID, version: int, what: str) -> bytes:
        return f"{what}|{account_id}|{version}".encode()

    def create_account_keys(self, session: Session, account_id: uuid.UUID) -> AccountKey:
        kek, index_root = new_key(), new_key()
        row = AccountKey(
            account_id=account_id,
            version=1,
            wrapped_kek=seal(self._master, kek, self._kek_ad(account_id, 1, "kek")),
            wrapped_index_key=seal(self._master, index_root, self._kek_ad(account_id, 1, "index")),
        )
        session.add(row)
        session.flush()
        return row

    def opens(self, row: AccountKey) -> bool:
        """Whether this master key unwraps ``row`` (readiness: the key matches the data)."""
        try:
            open_sealed(
                self._master, row.wrapped_kek, self._kek_ad(row.account_id, row.version, "kek")
            )
        except IntegrityFailure:
            return False
        return True

    def _active_key_row(self, session: Session, account_id: uuid.UUID) -> AccountKey:
        row = session.scalars(
            select(AccountKey)
            .where(AccountKey.account_id == account_id, AccountKey.retired_at.is_(None))
            .order_by(AccountKey.version.desc())
            .limit(1)
        ).first()
        if row is None:
            raise KeyUnavailable("the account has no active key")
        return row

    def _kek(self, session: Session, account_id: uuid.UUID, version: int) -> AESGCM:
        cached = self._keks.get((account_id, version))
        if cached is not None:
            return cached
        row = session.scalars(
            select(AccountKey).where(
                AccountKey.account_id == account_id, AccountKey.version == version
            )
        ).first()
        if row is None:
            raise KeyUnavailable("the account key version is not available")
        kek = AESGCM(
            open_sealed(self._master, row.wrapped_kek, self._kek_ad(account_id, version, "kek"))
        )
        self._keks[(account_id, version)] = kek
        return kek

    def _index_root(self, session: Session, account_id: uuid.UUID) -> bytes:
        root = self._index_roots.get(account_id)
        if root is None:
            row = self._active_key_row(session, account_id)
            root = open_sealed(
                self._master,
                row.wrapped_index_key,
                self._kek_ad(account_id, row.version, "index"),
            )
            self._index_roots[account_id] = root
        return root

    def index_key(self, session: Session, account_id: uuid.UUID, table: str, column: str) -> bytes:
        """Per (account, table, column, epoch): indexes never link values across accounts."""
        ck = (account_id, f"{table}.{column}")
        key = self._index_keys.get(ck)
        if key is None:
            key = hkdf(
                self._index_root(session, account_id),
                f"bidx|{account_id}|{table}|{column}|{INDEX_EPOCH}",
            )
            self._index_keys[ck] = key
        return key

    def index(
        self, session: Session, account_id: uuid.UUID, table: str, column: str, normalised: str
    ) -> int:
        key = self.index_key(session, account_id, table, column)
        return blind_index(key, normalised, self.index_bits)

    def phone_index(
        self, session: Session, account_id: uuid.UUID, table: str, raw: str
    ) -> tuple[str, int]:
        e164 = normalize.phone_e164(raw, self.region)
        return e164, self.index(session, account_id, table, "phone", e164)

    def rotate_account(self, session: Session, account_id: uuid.UUID) -> tuple[int, int]:
        """New KEK version; every DEK re-wrapped under it; the old version retired.

        Data is never re-encrypted: only the wrapped DEKs change. Returns (version, count).
        """
        current = self._active_key_row(session, account_id)
        old_kek = self._kek(session, account_id, current.version)
        index_root = self._index_root(session, account_id)
        version = current.version + 1
        kek_raw = new_key()
        new_kek = AESGCM(kek_raw)
        session.add(
            AccountKey(
                account_id=account_id,
                version=version,
                wrapped_kek=seal(self._master, kek_raw, self._kek_ad(account_id, version, "kek")),
                wrapped_index_key=seal(
                    self._master, index_root, self._kek_ad(account_id, version, "index")
                ),
            )
        )
        count = 0
        batch = 1000
        last: uuid.UUID | None = None
        while True:
            q = select(SubjectKey).where(SubjectKey.account_id == account_id)
            if last is not None:
                q = q.where(SubjectKey.subject_id > last)
            rows = session.scalars(q.order_by(SubjectKey.subject_id).limit(batch)).all()
            if not rows:
                break
            for sk in rows:
                kek = (
                    old_kek
                    if sk.kek_version == current.version
                    else self._kek(session, account_id, sk.kek_version)
                )
                dek = open_sealed(
                    kek,
                    self._outer_open(sk, account_id),
                    self._dek_ad(account_id, sk.subject_id, sk.kek_version),
                )
                sk.wrapped_dek = self._outer_seal(
                    account_id,
                    sk.subject_id,
                    sk.epoch,
                    seal(new_kek, dek, self._dek_ad(account_id, sk.subject_id, version)),
                )
                sk.kek_version = version
                count += 1
            last = rows[-1].subject_id
            session.flush()
        session.execute(
            update(AccountKey)
            .where(AccountKey.account_id == account_id, AccountKey.version < version)
            .values(retired_at=utcnow())
        )
        self._keks[(account_id, version)] = new_kek
        self._active[account_id] = (version, time.monotonic())
        return version, count

    # -- subject keys ---------------------------------------------------------------------

    @staticmethod
    def _dek_ad(account_id: uuid.UUID, subject_id: uuid.UUID, version: int) -> bytes:
        return f"dek|{account_id}|{subject_id}|{version}".encode()

    def _active_version(self, session: Session, account_id: uuid.UUID) -> int:
        cached = self._active.get(account_id)
        now = time.monotonic()
        if cached is not None and now - cached[1] < self.active_ttl:
            return cached[0]
        version = self._active_key_row(session, account_id).version
        self._active[account_id] = (version, now)
        return version

    def new_subject_key(
        self, session: Session, account_id: uuid.UUID, subject_id: uuid.UUID
    ) -> tuple[SubjectCipher, dict[str, Any]]:
        """A fresh data key: its cipher, and the ``subject_keys`` row to insert (for bulk use)."""
        version = self._active_version(session, account_id)
        kek = self._kek(session, account_id, version)
        epoch = self._current_epoch(session)
        dek = new_key()
        inner = seal(kek, dek, self._dek_ad(account_id, subject_id, version))
        row = {
            "subject_id": subject_id,
            "account_id": account_id,
            "kek_version": version,
            "wrapped_dek": self._outer_seal(account_id, subject_id, epoch, inner),
            "created_at": utcnow(),
            "epoch": epoch,
        }
        return SubjectCipher(account_id, subject_id, dek), row

    def create_subject_key(
        self, session: Session, account_id: uuid.UUID, subject_id: uuid.UUID
    ) -> SubjectCipher:
        cipher, row = self.new_subject_key(session, account_id, subject_id)
        session.add(SubjectKey(**row))
        return cipher

    def cipher(
        self, session: Session, account_id: uuid.UUID, subject_id: uuid.UUID
    ) -> SubjectCipher:
        """The subject's cipher; KeyUnavailable once the key is destroyed (erased subject)."""
        sk = session.get(SubjectKey, subject_id)
        if sk is None or sk.account_id != account_id:
            raise KeyUnavailable("the data subject's key does not exist (erased?)")
        ck = (subject_id, sk.wrapped_dek)
        dek = self._deks.get(ck)
        if dek is None:
            kek = self._kek(session, account_id, sk.kek_version)
            try:
                inner = self._outer_open(sk, account_id)
            except KeyUnavailable:
                # Read just before a rotation re-wrapped it and destroyed its epoch: read again.
                session.refresh(sk)
                ck = (subject_id, sk.wrapped_dek)
                inner = self._outer_open(sk, account_id)
            dek = open_sealed(kek, inner, self._dek_ad(account_id, subject_id, sk.kek_version))
            self._deks[ck] = dek
            if len(self._deks) > self._dek_cache_size:
                self._deks.popitem(last=False)
        return SubjectCipher(account_id, subject_id, dek)

    def destroy_subject_key(
        self, session: Session, account_id: uuid.UUID, subject_id: uuid.UUID
    ) -> bool:
        """Crypto-shredding: every value sealed for this subject becomes unreadable."""
        sk = session.get(SubjectKey, subject_id)
        for ck in [k for k in self._deks if k[0] == subject_id]:
            del self._deks[ck]
        if sk is None or sk.account_id != account_id:
            return False
        if self.epochs is not None:
            # Before the commit: the deleted row's copies (dead tuple, WAL) stay wrapped under
            # the current epoch until a rotation destroys it; the mark makes one due.
            self.epochs.mark_due()
        session.delete(sk)
        session.flush()
        return True

    def forget_account(self, account_id: uuid.UUID) -> None:
        """Drop cached keys of an account (after off-boarding destroyed them); the deleted
        subject keys' residue goes with the next erasure-epoch rotation, made due here."""
        if self.epochs is not None:
            self.epochs.mark_due()
        for k in [k for k in self._keks if k[0] == account_id]:
            del self._keks[k]
        self._active.pop(account_id, None)
        self._index_roots.pop(account_id, None)
        for ik in [ik for ik in self._index_keys if ik[0] == account_id]:
            del self._index_keys[ik]

    # -- erasure epochs (ADR 0029) ---------------------------------------------------------

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
        q = (
            select(KeyEpoch.epoch)
            .where(KeyEpoch.retired_at.is_(None))
            .order_by(KeyEpoch.epoch.desc())
            .limit(1)
        )
        if pg:
            q = q.with_for_update(read=True)
        for _ in range(3):
            epoch = session.scalar(q)
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

    # -- derived keys ---------------------------------------------------------------------

    def checkpoint_signing_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(hkdf(self._master_raw, "audit-checkpoint"))

    def derived_secret(self, purpose: str) -> bytes:
        """A secret for one purpose (session signing, TOTP sealing…), derived from the master."""
        return hkdf(self._master_raw, f"derived|{purpose}")
