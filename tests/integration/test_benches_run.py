"""Every benchmark still runs, at a tiny size, to its verdict: a bench that rots (an API it
calls changed, a table it needs moved) is found here rather than by the next person who wants
a figure (session 18 found `bench.backup` and `bench.rights_lookup` broken that way). The figures
themselves are not asserted: a timed test on a shared machine proves nothing (docs/performance.md).
SQLite only; the PostgreSQL rows of `bench.table` need a disposable database of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_URL

ROOT = Path(__file__).resolve().parents[2]

BENCHES = {
    "startup": ["--repeat", "1"],
    "crypto_insert": ["--rows", "20"],
    "take_message": ["--requests", "20", "--concurrency", "2"],
    "take_message_cpu": ["--cpu", "5"],
    "audit_verify": ["--entries", "200", "--repeat", "1"],
    "load": ["--duration", "1", "--operators", "2", "--clients", "1"],
    "pages": ["--repeat", "2"],
    "stats_year": ["--calls", "300", "--repeat", "1"],
    "backup": ["--messages", "20", "--recordings", "2"],
    "retention_sweep": ["--rows", "200", "--batch", "50"],
    "rights_lookup": ["--callers", "50", "--lookups", "2"],
    "pii_eval": ["--no-presidio", "--min-seconds", "0"],
}


@pytest.mark.skipif(bool(PG_URL), reason="the benches' SQLite runs: once, in the SQLite pass")
@pytest.mark.parametrize("name", sorted(BENCHES))
def test_the_bench_runs_to_its_end(name: str, tmp_path: Path) -> None:
    module = name.removesuffix("_cpu")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERMANENCE_")}
    env["TMPDIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *BENCHES[name]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith("permanence-bench-")]
    assert leftovers == [], f"temporary databases left behind: {leftovers}"
