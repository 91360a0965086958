"""Issue 19: what an erasure-epoch rotation costs at 100,000 callers (ADR 0029).

One account holding ``--callers`` subject keys (inserted in bulk, wrapped under epoch 1), then,
in the same run:
- baseline: the same number of wrapped keys unwrapped and wrapped again under a new key in a
  plain Python loop (AES-256-GCM both ways, in memory: the least a rotation must do);
- rotation: ``Keyring.rotate_epoch`` as 'serve' and 'keys rotate-epoch' run it: the epoch
  retired, a new key written to the epoch file, every key read, unwrapped, re-wrapped and
  written back in batches of 1,000 (one transaction each), the old key destroyed.
The figure is the ratio and the rotation's wall time (the bound it adds to the residue
window, docs/rights.md). On a shared machine read the ratio, not the seconds.

    .venv/bin/python -m bench.epoch_rotation [--callers 100000]
    PERMANENCE_BENCH_MIGRATION_URL=postgresql+psycopg://owner@host/db \\
    PERMANENCE_BENCH_APP_ROLE=app \\
    .venv/bin/python -m bench.epoch_rotation --database-url postgresql+psycopg://app@host/db

The PostgreSQL database must be disposable: its schema is dropped first (bench.common).
"""

from __future__ import annotations

import argparse
import time
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, insert, select

from bench.common import fresh_runtime
from permanence.accounts.model import AccountKind
from permanence.accounts.service import create_account
from permanence.context import AccessContext, Role
from permanence.crypto.model import SubjectKey
from permanence.crypto.primitives import new_key, open_sealed, seal


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--callers", type=int, default=100_000)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    rt, _tmp = fresh_runtime(args.database_url)
    try:
        with rt.db.session(AccessContext(role=Role.ADMIN, reason="bench")) as s:
            account = create_account(
                s, rt.keyring, slug="bench", name="Bench", kind=AccountKind.OTHER
            )
        a = account.id
        ctx = AccessContext.system("bench", a)
        t0 = time.perf_counter()
        for start in range(0, args.callers, 5000):
            with rt.db.session(ctx) as s:
                rows = [
                    rt.keyring.new_subject_key(s, a, uuid.uuid4())[1]
                    for _ in range(min(5000, args.callers - start))
                ]
                s.execute(insert(SubjectKey), rows)
        made = time.perf_counter() - t0
        with rt.db.session(ctx, readonly=True) as s:
            n = s.scalar(select(func.count()).select_from(SubjectKey))
            sample = [bytes(w) for w in s.scalars(select(SubjectKey.wrapped_dek))]
        assert n == args.callers

        old, new = AESGCM(new_key()), AESGCM(new_key())
        blobs = [seal(old, w, b"ad") for w in sample]
        t0 = time.perf_counter()
        for blob in blobs:
            seal(new, open_sealed(old, blob, b"ad"), b"ad")
        baseline = time.perf_counter() - t0

        t0 = time.perf_counter()
        done = rt.keyring.rotate_epoch(rt.db, grace=0)
        rotation = time.perf_counter() - t0
        assert done["rewrapped"] == args.callers, done
        print(f"backend: {rt.db.engine.dialect.name}; {args.callers} subject keys ({made:.1f} s)")
        print(
            f"baseline (unwrap + wrap in memory): {baseline:.2f} s "
            f"({baseline / args.callers * 1e6:.1f} µs/key)"
        )
        print(
            f"rotation (read, re-wrap, write back in batches, old key destroyed): "
            f"{rotation:.2f} s ({rotation / args.callers * 1e6:.1f} µs/key)"
        )
        print(f"ratio rotation / baseline: {rotation / baseline:.1f}x")
    finally:
        rt.close()


if __name__ == "__main__":
    main()
