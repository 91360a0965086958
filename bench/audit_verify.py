"""Issue 24: `permanence audit verify` checks >= 300,000 entries/s on SQLite.

Writes ENTRIES audit entries through the product's own `audit.record` (in transactions of
5,000), then times `integrity.verify` — the function behind `permanence audit verify` — over the
whole chain. Baseline, same run: the bare SHA-256 chain over the same bodies in memory (the
floor: what hashing alone costs, with no database read and no column check).

    .venv/bin/python -m bench.audit_verify [--entries 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import time
import uuid

from sqlalchemy import select

from bench.common import fresh_runtime
from permanence.audit import integrity
from permanence.audit import service as audit
from permanence.audit.model import GENESIS_HASH, AuditEntry
from permanence.context import AccessContext, Role


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rt, tmp = fresh_runtime()
    try:
        actor = uuid.uuid4()
        t0 = time.perf_counter()
        done = 0
        while done < args.entries:
            n = min(5000, args.entries - done)
            ctx = AccessContext(role=Role.OPERATOR, reason="bench", actor_id=actor)
            with rt.db.session(ctx) as s:
                for _ in range(n):
                    audit.record(
                        s, "message.read", "message", uuid.uuid4(), subject_id=uuid.uuid4()
                    )
            done += n
        write_s = time.perf_counter() - t0
        with rt.db.session(AccessContext.system("bench"), readonly=True) as s:
            bodies = [(q, b) for q, b in s.execute(select(AuditEntry.seq, AuditEntry.body))]
        public = rt.keyring.checkpoint_signing_key().public_key()

        def floor() -> None:
            prev = bytes.fromhex(GENESIS_HASH)
            for seq, body in bodies:
                prev = hashlib.sha256(prev + seq.to_bytes(8, "big") + body.encode()).digest()

        def product() -> integrity.VerifyResult:
            with rt.db.session(AccessContext.system("bench"), readonly=True) as s:
                return integrity.verify(s, public)

        floor_t, product_t = [], []
        result = product()
        assert result.ok and result.entries == len(bodies), result.line()
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            floor()
            floor_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            product()
            product_t.append(time.perf_counter() - t0)
        n = len(bodies)
        f, p = statistics.median(floor_t), statistics.median(product_t)
        print(f"{n} entries written through audit.record in {write_s:.1f} s ({n / write_s:,.0f}/s)")
        print(f"{'what':<44}{'median s':>10}{'entries/s':>12}")
        print(f"{'floor: SHA-256 chain in memory':<44}{f:>10.3f}{n / f:>12,.0f}")
        print(f"{'integrity.verify (audit verify), SQLite':<44}{p:>10.3f}{n / p:>12,.0f}")
        print(f"ratio: verify takes {p / f:.2f}x the bare hash chain")
        ok = n / p >= 300_000
        verdict = "PASS" if ok else "FAIL"
        print(f"audit verify: {n / p:,.0f} entries/s (target >= 300,000/s): {verdict}")
    finally:
        rt.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
