"""Shared set-up for the benchmarks: a fresh migrated database in a temporary directory."""

from __future__ import annotations

import base64
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from permanence import schema
from permanence.config import Settings
from permanence.runtime import Runtime


def fresh_runtime(database_url: str | None = None) -> tuple[Runtime, Path]:
    """SQLite in a temporary directory, or the given (empty or disposable) database."""
    tmp = Path(tempfile.mkdtemp(prefix="permanence-bench-"))
    url = database_url or f"sqlite:///{tmp / 'bench.db'}"
    owner = os.environ.get("PERMANENCE_BENCH_MIGRATION_URL", url)
    schema.upgrade(owner, os.environ.get("PERMANENCE_BENCH_APP_ROLE"))
    settings = Settings(
        data_dir=tmp,
        database_url=url,
        master_key=base64.b64encode(os.urandom(32)).decode(),
    )
    return Runtime.from_settings(settings), tmp


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Seconds per call, ``repeat`` calls."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
        if len(values) > 1
        else values[0]
    )
