"""Issue 24: `permanence audit verify` checks >= 300,000 entries/s on SQLite.

Writes ENTRIES audit entries through the product's own `audit.record` (in transactions of
5,000), then times `integrity.verify` — the function behind `permanence audit verify` — over the
whole chain, as the command runs it (from 50,000 entries on, in two processes: ADR 0042) and
in one process. Baseline, same run: the bare SHA-256 chain over the same bodies in memory (the
floor: what hashing alone costs, with no database read and no column check). Besides the wall
clock, the CPU time of this process and of the second one (the machine may be shared: CPU
time is what the code costs, whoever else runs).

    .venv/bin/python -m bench.audit_verify [--entries 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import resource
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

        def product(split_at: int = integrity.SPLIT_AT) -> integrity.VerifyResult:
            with rt.db.session(AccessContext.system("bench"), readonly=True) as s:
                return integrity.verify(s, public, split_at=split_at)

        def one_process() -> integrity.VerifyResult:
            return product(split_at=len(bodies) + 1)

        def cpu() -> tuple[float, float]:
            """CPU seconds of this process, and of the processes it waited for."""
            me = resource.getrusage(resource.RUSAGE_SELF)
            them = resource.getrusage(resource.RUSAGE_CHILDREN)
            return me.ru_utime + me.ru_stime, them.ru_utime + them.ru_stime

        times: dict[str, list[tuple[float, float, float]]] = {"floor": [], "two": [], "one": []}
        result = product()
        assert result.ok and result.entries == len(bodies), result.line()
        assert one_process() == result
        for _ in range(args.repeat):
            for name, fn in (("floor", floor), ("two", product), ("one", one_process)):
                (c0, k0), t0 = cpu(), time.perf_counter()
                fn()
                t1, (c1, k1) = time.perf_counter(), cpu()
                times[name].append((t1 - t0, c1 - c0, k1 - k0))
        n = len(bodies)

        def row(label: str, name: str) -> float:
            wall = statistics.median(t for t, _, _ in times[name])
            total = min(c + k for _, c, k in times[name])
            longest = min(max(c, k) for _, c, k in times[name])
            print(
                f"{label:<44}{wall:>9.3f}{n / wall:>11,.0f}{n / total:>11,.0f}{n / longest:>11,.0f}"
            )
            return wall

        print(f"{n} entries written through audit.record in {write_s:.1f} s ({n / write_s:,.0f}/s)")
        print(f"{'':<44}{'median s':>9}{'entries/s':>11}{'per CPU s':>11}{'per CPU s':>11}")
        print(f"{'':<44}{'(wall)':>9}{'(wall)':>11}{'(total)':>11}{'(longest)':>11}")
        f = row("floor: SHA-256 chain in memory", "floor")
        p = row("integrity.verify (audit verify), SQLite", "two")
        row("  the same in one process", "one")
        print(
            "CPU: the best of the rounds; total: both processes' together; longest: the one"
            " that took more (what the wall clock is, on two idle cores)"
        )
        print(f"ratio: verify takes {p / f:.2f}x the bare hash chain")
        ok = n / p >= 300_000
        verdict = "PASS" if ok else "FAIL"
        print(f"audit verify: {n / p:,.0f} entries/s (target >= 300,000/s): {verdict}")
    finally:
        rt.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
