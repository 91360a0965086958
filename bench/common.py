"""Shared set-up for the benchmarks: a fresh migrated database in a temporary directory."""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from permanence import schema
from permanence.config import Settings
from permanence.runtime import Runtime


def fresh_runtime(database_url: str | None = None) -> tuple[Runtime, Path]:
    """SQLite in a temporary directory, or the given disposable PostgreSQL database, whose
    schema is dropped first (so one bench never meets another's rows).

    The directory is removed when the benchmark's process exits, however it ends (a
    benchmark of a million rows leaves hundreds of MB otherwise)."""
    tmp = Path(tempfile.mkdtemp(prefix="permanence-bench-"))
    atexit.register(shutil.rmtree, tmp, True)
    url = database_url or f"sqlite:///{tmp / 'bench.db'}"
    owner = os.environ.get("PERMANENCE_BENCH_MIGRATION_URL", url)
    if database_url:
        reset_postgresql(owner)
    schema.upgrade(owner, os.environ.get("PERMANENCE_BENCH_APP_ROLE"))
    settings = Settings(
        data_dir=tmp,
        database_url=url,
        master_key=base64.b64encode(os.urandom(32)).decode(),
    )
    return Runtime.from_settings(settings), tmp


def reset_postgresql(owner_url: str) -> None:
    """Drop and recreate the public schema of a disposable database (its owner's URL)."""
    from sqlalchemy import create_engine, pool, text

    engine = create_engine(owner_url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Seconds per call, ``repeat`` calls."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q / 100 * len(ordered))))]
