"""Files and directories holding personal data are private to the service's user.

The data directory (master key, recordings, rights packages, the erasure journal mirror, the
SQLite database) is 0700 and the SQLite database file 0600 (its -wal and -shm files take the
database file's mode from SQLite). Applied by ``init``, ``serve`` (``Runtime.from_settings``),
``db upgrade`` and ``restore``; an existing install made before is tightened the same way."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy.engine import make_url

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if needed; the directory itself is made 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    with contextlib.suppress(PermissionError):  # not ours (e.g. a mounted volume): leave it
        os.chmod(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 if it does not exist, else make it 0600 (its
    folder must exist)."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE)
    os.close(fd)
    with contextlib.suppress(PermissionError):
        os.chmod(path, FILE_MODE)
    return path


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for in-memory or another backend)."""
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def private_sqlite(url: str) -> None:
    """Make the SQLite database file of ``url`` private before SQLite opens it (SQLite
    creates a new file 0644 under the usual umask, and its WAL and SHM files copy that)."""
    path = sqlite_file(url)
    # A missing folder is a wrong setting, not ours to create: SQLite then fails to open the
    # file and the service says the database is unavailable (503, /readyz).
    if path is not None and path.parent.is_dir():
        private_file(path)
