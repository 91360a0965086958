"""Erasure-epoch keys: the key layer outside the database (ADR 0029).

Every subject key row holds its data key wrapped by the account's KEK and then by the key of
an *erasure epoch*. The epoch keys live in one file beside the master key (mode 0600), sealed
under a key derived from the master key, so a copy of the file without the master key (or
its KMS) opens nothing. A rotation re-wraps the surviving subject keys under a new epoch and
then destroys the old epoch's key in this file: the copies of an erased caller's key that the
database's own files still hold (a dead tuple, a WAL segment, an archived segment) are
wrapped under a key that no longer exists.

The file is rewritten whole (a new file renamed over the old one, fsynced), then the old
file's bytes are overwritten through a descriptor kept open on it, so that its blocks do not
keep the destroyed key either (on a file system that writes in place; docs/rights.md).
Writers take an exclusive lock on ``<file>.lock``; readers reload the file when it changed.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from permanence.crypto.primitives import hkdf, new_key, open_sealed, seal
from permanence.errors import ConfigurationError, IntegrityFailure

FILE_AD = b"permanence-erasure-epochs|1"
# The file is padded to a whole number of these, so that rewriting it in place covers the
# old content (a file that shrank would leave its tail).
PAD = 4096
DUE_SUFFIX = ".due"


@contextlib.contextmanager
def rotation_lock(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Held by a rotation from start to end, and by a backup while it takes its snapshot
    and its copy of the epoch file (so the copy has every key the snapshot's rows need)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.rotate.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def read_sealed(path: Path) -> bytes | None:
    """The epoch file as it is (sealed under the master key), None if there is none."""
    try:
        return path.read_bytes().rstrip(b"\n") + b"\n"
    except FileNotFoundError:
        return None


class EpochKeys:
    """The epoch keys of one installation: ``{epoch: key}``, read from and written to the file."""

    def __init__(self, path: Path, master_key: bytes) -> None:
        self.path = path
        self._aead = AESGCM(hkdf(master_key, "erasure-epochs"))
        self._keys: dict[int, AESGCM] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._mutex = threading.Lock()

    # -- reading ------------------------------------------------------------------------------

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self) -> dict[int, bytes]:
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError):
            raise ConfigurationError(
                f"cannot read the erasure-epoch key file {self.path}"
            ) from None
        return self._decode(text, f"the erasure-epoch key file {self.path}")

    def _decode(self, text: str, what: str) -> dict[int, bytes]:
        try:
            sealed = base64.b64decode(text.strip().split("\n", 1)[0], validate=True)
            data = json.loads(open_sealed(self._aead, sealed, FILE_AD))
            return {int(k): base64.b64decode(v) for k, v in data["keys"].items()}
        except IntegrityFailure:
            raise ConfigurationError(f"{what}: does not open with this master key") from None
        except (ValueError, KeyError, TypeError):
            raise ConfigurationError(f"{what}: not erasure-epoch keys") from None

    def _refresh(self) -> None:
        stamp = self._file_stamp()
        if stamp != self._stamp or stamp is None:
            keys = self._read()
            self._keys = {e: AESGCM(k) for e, k in keys.items()}
            self._stamp = stamp

    def get(self, epoch: int) -> AESGCM | None:
        """The key of ``epoch``, or None when it was destroyed (or never made here)."""
        with self._mutex:
            key = self._keys.get(epoch)
            if key is None:
                self._refresh()
                key = self._keys.get(epoch)
            return key

    def epochs(self) -> set[int]:
        with self._mutex:
            self._refresh()
            return set(self._keys)

    def export(self) -> dict[int, bytes]:
        """Every live epoch key (for a backup, which keeps them under the backup key)."""
        with self._lock():
            return self._read()

    # -- writing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{self.path}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def rotation_lock(self, *, wait: bool = True) -> contextlib.AbstractContextManager[bool]:
        """One rotation at a time (across processes sharing the file); yields whether taken."""
        return rotation_lock(self.path, wait=wait)

    def merge_sealed(self, raw: bytes) -> set[int]:
        """Add the keys of an epoch file's content (a backup's copy); their epochs."""
        keys = self._decode(
            raw.decode("ascii", errors="replace"), "the backup's erasure-epoch keys"
        )
        self.merge(keys)
        return set(keys)

    def _write(self, keys: dict[int, bytes]) -> None:
        doc = {"keys": {str(e): base64.b64encode(k).decode() for e, k in sorted(keys.items())}}
        line = base64.b64encode(seal(self._aead, json.dumps(doc).encode(), FILE_AD)) + b"\n"
        data = line + b"\n" * (-len(line) % PAD)
        old_fd: int | None = None
        with contextlib.suppress(FileNotFoundError):
            old_fd = os.open(self.path, os.O_RDWR)
        # A write cut short (a crash before the rename) left its copy: it may hold keys
        # destroyed since, so it goes (we hold the lock: no write is in progress).
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        if old_fd is not None:  # the new file is durable: now wipe the old one's bytes
            try:
                size = os.fstat(old_fd).st_size
                os.pwrite(old_fd, b"\0" * size, 0)
                os.fsync(old_fd)
            finally:
                os.close(old_fd)
        with self._mutex:
            self._keys = {e: AESGCM(k) for e, k in keys.items()}
            self._stamp = self._file_stamp()

    def ensure(self, epoch: int) -> AESGCM:
        """The key of ``epoch``, made and written (durably) first if the file has none."""
        with self._lock():
            keys = self._read()
            if epoch not in keys:
                keys[epoch] = new_key()
                self._write(keys)
            return AESGCM(keys[epoch])

    def highest(self) -> int:
        with self._lock():
            return max(self._read(), default=0)

    def destroy(self, epochs: set[int]) -> int:
        """Remove the keys of ``epochs`` from the file (and this process). How many were there."""
        with self._lock():
            keys = self._read()
            gone = {e for e in epochs if e in keys}
            if gone:
                self._write({e: k for e, k in keys.items() if e not in gone})
            with self._mutex:
                for e in epochs:
                    self._keys.pop(e, None)
            return len(gone)

    def merge(self, keys: dict[int, bytes]) -> None:
        """Add epoch keys (a restore: the backup's); an epoch already here takes the given key
        (the restored database is the one whose rows they wrap)."""
        with self._lock():
            current = self._read()
            if any(current.get(e) != k for e, k in keys.items()):
                self._write(current | keys)

    # -- rotation due ---------------------------------------------------------------------------

    @property
    def due_path(self) -> Path:
        return self.path.with_name(self.path.name + DUE_SUFFIX)

    def mark_due(self) -> None:
        """An erasure happened: a rotation is due (the first mark since the last rotation
        counts, so that erasures are batched; written before the erasure commits)."""
        try:
            fd = os.open(self.due_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        except FileNotFoundError:  # the folder is gone: the next scheduled rotation covers it
            return
        try:
            os.write(fd, f"{time.time():.3f}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    @property
    def _taken_path(self) -> Path:
        return self.path.with_name(self.path.name + DUE_SUFFIX + ".taken")

    def due_since(self) -> float | None:
        """When the first erasure not yet covered by a rotation happened (None: none)."""
        times = []
        for path in (self.due_path, self._taken_path):
            try:
                times.append(float(path.read_text().strip() or 0))
            except FileNotFoundError:
                continue
            except ValueError:
                times.append(0.0)
        return min(times, default=None)

    def take_due(self) -> None:
        """A rotation starts: the marks so far are its to cover (an erasure after this makes
        a new mark, for the next rotation)."""
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.due_path, self._taken_path)

    def done_due(self) -> None:
        """The rotation that took the marks finished."""
        with contextlib.suppress(FileNotFoundError):
            self._taken_path.unlink()
