"""Failures of the infrastructure (the database, its disk), told apart from bugs.

A database that cannot be reached, a connection cut, a pool exhausted or a full disk is not a
fault of the request: the web layer answers 503 (507 for a full disk) with ``Retry-After``,
and logs one line naming the cause; the workers log the same line and try again later.
Database error messages can carry values (a unique key, a row), so ``describe`` keeps only the
driver's class and, for connection-level errors, the first line of its message, which names
the cause (refused, terminated, disk full) and never a row.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exc as sa_exc

from permanence.errors import PermanenceError


class ServiceUnavailable(PermanenceError):
    """The database (or another part of the infrastructure) cannot serve now: try again."""

    status_code = 503
    code = "service_unavailable"

    def __init__(self, message: str, code: str, retry_after: int, status: int = 503) -> None:
        super().__init__(message)
        self.code = code
        self.status_code = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Failure:
    status: int
    code: str
    message: str
    retry_after: int

    def error(self) -> ServiceUnavailable:
        return ServiceUnavailable(self.message, self.code, self.retry_after, self.status)


DATABASE_UNAVAILABLE = Failure(
    503, "database_unavailable", "the database cannot be reached: try again shortly", 5
)
DATABASE_BUSY = Failure(503, "database_busy", "the database is overloaded: try again shortly", 5)
STORAGE_FULL = Failure(
    507,
    "storage_full",
    "the server's storage is full: nothing was saved; try again once space is freed",
    60,
)

# SQLite's result codes (sqlite3 errors carry ``sqlite_errorname`` since Python 3.11).
_SQLITE_FULL = frozenset({"SQLITE_FULL", "SQLITE_IOERR_WRITE"})
_SQLITE_BUSY = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED"})


def classify(exc: BaseException) -> Failure | None:
    """The infrastructure failure ``exc`` is, or None for anything else (a bug, bad data)."""
    if isinstance(exc, sa_exc.TimeoutError):  # the connection pool stayed exhausted
        return DATABASE_BUSY
    if isinstance(exc, OSError) and exc.errno == 28:  # ENOSPC from a file write
        return STORAGE_FULL
    if not isinstance(exc, sa_exc.DBAPIError):
        return None
    sqlite = str(getattr(exc.orig, "sqlite_errorname", ""))
    if sqlite in _SQLITE_FULL or "database or disk is full" in str(exc.orig):
        return STORAGE_FULL
    if sqlite.startswith(tuple(_SQLITE_BUSY)):
        return DATABASE_BUSY
    if exc.connection_invalidated or isinstance(
        exc, sa_exc.OperationalError | sa_exc.InterfaceError
    ):
        return DATABASE_UNAVAILABLE
    # A file that is not (or no longer) a database: sqlite3.DatabaseError itself.
    if type(exc) is sa_exc.DatabaseError:
        return DATABASE_UNAVAILABLE
    return None


def describe(exc: BaseException) -> str:
    """The cause of a failure in one line without personal data: the class names and, for
    connection-level database errors, the first line of the driver's message."""
    if isinstance(exc, sa_exc.DBAPIError):
        orig = exc.orig
        name = f"{exc.__class__.__name__} ({orig.__class__.__module__}.{orig.__class__.__name__})"
        if classify(exc) is not None:
            first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
            return f"{name}: {first[:160]}" if first else name
        return name
    if isinstance(exc, sa_exc.TimeoutError):
        return "TimeoutError: connection pool exhausted"
    if isinstance(exc, OSError):
        return f"{exc.__class__.__name__} (errno {exc.errno}: {exc.strerror})"
    return exc.__class__.__name__


# Below this much free space in the data directory, /readyz says the disk is full.
MIN_FREE_BYTES = 32 * 1024 * 1024


def disk_full(path: Path, min_free: int = MIN_FREE_BYTES) -> bool:
    try:
        return shutil.disk_usage(path).free < min_free
    except OSError:
        return False
