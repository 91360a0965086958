"""The key hierarchy: master key → per-account KEK → per-subject DEK, and the erasure epoch.

The master key (crypto/masterkey.py) lives in a file made at ``init`` (mode 0600), in
``PERMANENCE_MASTER_KEY``, or is printed by ``PERMANENCE_MASTER_KEY_COMMAND`` (a KMS client
unwrapping it; docs/deployment.md).
Account KEKs and index keys are wrapped by it; subject DEKs are wrapped by their account's KEK
with associated data naming the account, the subject and the KEK version, so a wrapped key
cannot be moved to another subject; the result is wrapped again under the current
erasure-epoch key, which lives outside the database (crypto/epochlayer.py, crypto/epochs.py,
ADR 0029), so that a deleted row's residue in the database's files opens no more once the
epoch is rotated. A subject's values are sealed by its ``SubjectCipher`` (crypto/cipher.py).
Unwrapped keys are cached per process; the subject-key
row is read on every use, so a key destroyed by another process is never used again here.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from permanence.config import Settings
from permanence.crypto import normalize
from permanence.crypto.cipher import SubjectCipher
from permanence.crypto.epochlayer import EpochLayer
from permanence.crypto.epochs import EpochKeys
from permanence.crypto.masterkey import load_master_key
from permanence.crypto.model import AccountKey, SubjectKey
from permanence.crypto.primitives import (
    KEY_LEN,
    blind_index,
    hkdf,
    new_key,
    open_sealed,
    seal,
)
from permanence.db import utcnow
from permanence.errors import ConfigurationError, IntegrityFailure, KeyUnavailable

INDEX_EPOCH = 1


class Keyring(EpochLayer):
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

    # -- derived keys ---------------------------------------------------------------------

    def checkpoint_signing_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(hkdf(self._master_raw, "audit-checkpoint"))

    def derived_secret(self, purpose: str) -> bytes:
        """A secret for one purpose (session signing, TOTP sealing…), derived from the master."""
        return hkdf(self._master_raw, f"derived|{purpose}")
