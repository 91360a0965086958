"""The recordings store in PostgreSQL (ADR 0036) against the local store, in the same run.

One recording of N MB (random audio) is encrypted as it streams into each store
(``crypto.stream``, as the download worker does), then read back and decrypted as playback
does; rounds alternate between the stores. Prints MB/s of plaintext each way and the peak
Python memory of the database store (tracemalloc), which must stay at a few chunks.

    export PERMANENCE_BENCH_DATABASE_URL=postgresql+psycopg://permanence_app@127.0.0.1/bench
    export PERMANENCE_BENCH_MIGRATION_URL=postgresql+psycopg://permanence_owner@127.0.0.1/bench
    export PERMANENCE_BENCH_APP_ROLE=permanence_app
    .venv/bin/python -m bench.recordings_store [--megabytes 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Iterator

from bench.common import fresh_runtime
from permanence.accounts.model import AccountKind
from permanence.accounts.service import create_account
from permanence.context import AccessContext, Role
from permanence.crypto.stream import decrypt_stream, encrypt_stream
from permanence.filestore import LocalStore, RecordingStore, storage_key
from permanence.filestore_db import PostgresStore


def _audio(megabytes: int) -> Iterator[bytes]:
    block = os.urandom(64 * 1024)
    for _ in range(megabytes * 16):
        yield block


def _round(store: RecordingStore, account: uuid.UUID, megabytes: int) -> tuple[float, float]:
    """Seconds to put, seconds to read back, for one recording."""
    dek, ad = os.urandom(32), b"recordings|audio|bench"
    key = storage_key(account, uuid.uuid4())
    t0 = time.perf_counter()
    store.put(key, lambda fh: encrypt_stream(dek, ad, _audio(megabytes), fh))
    t1 = time.perf_counter()
    n = 0
    with store.open(key) as fh:
        for chunk in decrypt_stream(dek, ad, fh):
            n += len(chunk)
    t2 = time.perf_counter()
    assert n == megabytes * 1024 * 1024
    store.delete(key)
    return t1 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--megabytes", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    url = os.environ.get("PERMANENCE_BENCH_DATABASE_URL")
    if not url or not url.startswith("postgresql"):
        sys.exit("set PERMANENCE_BENCH_DATABASE_URL to a disposable PostgreSQL database")
    rt, tmp = fresh_runtime(url)
    try:
        with rt.db.session(AccessContext(role=Role.ADMIN, reason="bench")) as s:
            account = create_account(
                s,
                rt.keyring,
                slug=f"bench-{uuid.uuid4().hex[:8]}",
                name="Bench",
                kind=AccountKind.TRADES,
            ).id
        stores: dict[str, RecordingStore] = {
            "local": LocalStore(tmp / "recordings"),
            "postgresql": PostgresStore.for_url(url),
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in stores}
        for _ in range(args.rounds):
            for name, store in stores.items():
                times[name].append(_round(store, account, args.megabytes))
        tracemalloc.start()
        _round(stores["postgresql"], account, args.megabytes)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        mb = args.megabytes
        for name, runs in times.items():
            put = statistics.median(mb / p for p, _r in runs)
            read = statistics.median(mb / r for _p, r in runs)
            print(f"{name:10s} put {put:7.1f} MB/s  read {read:7.1f} MB/s (median of {len(runs)})")
        local_put = statistics.median(mb / p for p, _r in times["local"])
        local_read = statistics.median(mb / r for _p, r in times["local"])
        pg_put = statistics.median(mb / p for p, _r in times["postgresql"])
        pg_read = statistics.median(mb / r for _p, r in times["postgresql"])
        print(
            f"postgresql / local: put {pg_put / local_put:.2f}x, read {pg_read / local_read:.2f}x;"
            f" peak Python memory of a {mb} MB put and read in the database: {peak / 1e6:.1f} MB"
        )
    finally:
        rt.close()


if __name__ == "__main__":
    main()
