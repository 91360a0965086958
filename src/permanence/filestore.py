"""Where encrypted files are kept: call recordings, and the staff's attestations, rights
packages and voicemails that share the store. Only ciphertext ever reaches a store.

``LocalStore`` (the default) writes under the data directory. With
``PERMANENCE_RECORDINGS_BACKEND=postgresql`` the recordings store keeps the same ciphertext in
the database instead (``filestore_db.PostgresStore``, ADR 0036), for replicas on several hosts.
An S3-compatible store would implement the same protocol; it is not shipped yet.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from permanence.config import Settings

_KEY = re.compile(r"^[0-9a-f-]{36}/[0-9a-f-]{36}\.pmr$")


class RecordingStore(Protocol):
    def put(self, key: str, write: Callable[[BinaryIO], int]) -> int:
        """Store what ``write`` writes under ``key`` (all or nothing); returns its result."""
        ...

    def open(self, key: str) -> BinaryIO: ...

    def delete(self, key: str) -> bool:
        """Remove ``key``; False if it was not there (deleting twice is not an error)."""
        ...

    def exists(self, key: str) -> bool: ...


def storage_key(account_id: object, recording_id: object) -> str:
    return f"{account_id}/{recording_id}.pmr"


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalStore:
        return cls(settings.recordings_dir)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):  # keys are ours; refuse anything that could leave the root
            raise ValueError("invalid recording storage key")
        return self.root / key

    def put(self, key: str, write: Callable[[BinaryIO], int]) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                result = write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return result

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def exists(self, key: str) -> bool:
        return self._path(key).exists()


def store_from_settings(settings: Settings) -> RecordingStore:
    """The recordings store (recordings and voicemails) the settings choose."""
    if settings.recordings_backend == "postgresql":
        from permanence.filestore_db import PostgresStore

        return PostgresStore.for_url(settings.effective_database_url)
    return LocalStore.from_settings(settings)
