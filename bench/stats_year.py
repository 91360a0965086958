"""Issues 10 and 24: the statistics of one account over a year of calls (100,000) in under
200 ms.

Fixture: one account (the plumber's demo mandate), 1,000 callers, N calls spread over 2025
with a realistic mix (about 80 % answered after 2–90 s, 8 % abandoned, 8 % to voicemail,
2 % busy, the rest failed), each with its terminal outcome set as calls.outcome derives it
(the figures count outcomes: without it every condition is false at once), 30 % of them
with a message and 10 % with an appointment, and voicemail recordings — all bulk-inserted
with SQLAlchemy Core (dummy sealed payloads).
The rows go in through the application's sessions, so the hourly aggregates (ADR 0032) are
kept as they would be in service; the time they add to the inserts is printed.
Measured in the same run, on the same rows, median of several runs:
- baseline: ``SELECT count(*)`` of the account's calls in the year (same index range);
- statistics: ``stats.account_statistics`` for the year — every figure of
  docs/statistics.md, the hourly buckets, the 90th percentile, messages, appointments and
  recordings — read from the aggregates, through the application's own session (row-level
  security on PostgreSQL);
- the same figures from a scan of the rows (``stats.scan_account_statistics``, what the
  statistics were before issue 24); the two must be equal.

    .venv/bin/python -m bench.stats_year [--calls 100000] [--repeat 5]

PostgreSQL: set PERMANENCE_BENCH_DATABASE_URL (the application role) and
PERMANENCE_BENCH_MIGRATION_URL (the owner) to a database of its own: its schema is dropped
and recreated.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import time
import uuid
from importlib import resources

from sqlalchemy import create_engine, func, insert, pool, select, text

from bench.common import fresh_runtime
from permanence.accounts.model import AccountKind
from permanence.accounts.service import create_account, import_mandate
from permanence.calls.model import Call
from permanence.context import AccessContext, Role
from permanence.crypto.model import SubjectKey
from permanence.messages.model import Appointment, Message
from permanence.recordings.model import Recording
from permanence.runtime import Runtime
from permanence.stats import aggregates
from permanence.stats import service as stats
from permanence.subjects.model import Caller

YEAR = stats.Period(dt.date(2025, 1, 1), dt.date(2025, 12, 31))
LIMIT_S = 0.2


def build(n_calls: int) -> tuple[Runtime, uuid.UUID]:
    url = os.environ.get("PERMANENCE_BENCH_DATABASE_URL")
    rt, _tmp = fresh_runtime(url)
    text_ = resources.files("permanence.demo").joinpath("mandates", "plomberie-durand.yaml")
    with rt.db.session(AccessContext(role=Role.ADMIN, reason="bench")) as s:
        account = create_account(
            s, rt.keyring, slug="plomberie-durand", name="Plomberie", kind=AccountKind.TRADES
        )
        mv = import_mandate(s, text_.read_text(), account_id=account.id)
    a, mandate_id = account.id, mv.id
    ctx = AccessContext.system("bench", a)
    rng = random.Random(10)
    with rt.db.session(ctx) as s:
        callers = [uuid.uuid4() for _ in range(1000)]
        for cid in callers:
            _c, key_row = rt.keyring.new_subject_key(s, a, cid)
            s.execute(insert(SubjectKey).values(**key_row))
        s.execute(insert(Caller), [{"id": c, "account_id": a} for c in callers])
    year_start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    calls, msgs, appts, recs = [], [], [], []
    for i in range(n_calls):
        day = rng.randrange(365)
        # Office hours, Paris: most calls between 8 and 19 h.
        second = rng.randrange(7 * 3600, 18 * 3600) if rng.random() < 0.9 else rng.randrange(86400)
        started = year_start + dt.timedelta(days=day, seconds=second)
        row: dict[str, object] = {
            "id": uuid.uuid4(),
            "account_id": a,
            "caller_id": callers[i % 1000],
            "mandate_id": mandate_id,
            "started_at": started,
            "status": "completed",
            "voicemail": False,
            "recording_state": "off",
            "direction": "inbound",
        }
        r = rng.random()
        if r < 0.80:
            answered = started + dt.timedelta(seconds=rng.randint(2, 90))
            talk = rng.randint(30, 600)
            row |= {
                "answered_at": answered,
                "ended_at": answered + dt.timedelta(seconds=talk),
                "talk_s": talk if rng.random() < 0.5 else None,
                "operator_id": None,
                "outcome": "answered",
            }
            if rng.random() < 0.375:
                msgs.append((row["id"], row["caller_id"], answered))
            elif rng.random() < 0.2:
                appts.append((row["id"], row["caller_id"], answered))
        elif r < 0.88:
            row |= {
                "ended_at": started + dt.timedelta(seconds=rng.randint(1, 120)),
                "outcome": "abandoned",
            }
        elif r < 0.96:
            row |= {
                "ended_at": started + dt.timedelta(seconds=90),
                "voicemail": True,
                "outcome": "voicemail",
            }
            recs.append((row["id"], row["caller_id"], started + dt.timedelta(seconds=90)))
        elif r < 0.98:
            row |= {"status": "busy", "ended_at": started, "outcome": "failed"}
        else:
            row |= {"status": "failed", "ended_at": started, "outcome": "failed"}
        calls.append(row)
    chunk = 20_000
    with rt.db.session(ctx) as s:
        for k in range(0, len(calls), chunk):
            s.execute(insert(Call), calls[k : k + chunk])
        for k in range(0, len(msgs), chunk):
            s.execute(
                insert(Message),
                [
                    {
                        "id": uuid.uuid4(),
                        "account_id": a,
                        "caller_id": caller,
                        "call_id": call,
                        "mandate_id": mandate_id,
                        "purpose": "intervention",
                        "payload_sealed": b"\x00" * 64,
                        "created_at": when,
                        "acknowledged_at": when if rng.random() < 0.9 else None,
                    }
                    for call, caller, when in msgs[k : k + chunk]
                ],
            )
        if appts:
            s.execute(
                insert(Appointment),
                [
                    {
                        "id": uuid.uuid4(),
                        "account_id": a,
                        "caller_id": caller,
                        "call_id": call,
                        "mandate_id": mandate_id,
                        "purpose": "appointment",
                        "starts_at": when + dt.timedelta(days=3),
                        "ends_at": when + dt.timedelta(days=3, minutes=30),
                        "payload_sealed": b"\x00" * 64,
                        "created_at": when,
                    }
                    for call, caller, when in appts
                ],
            )
        if recs:
            s.execute(
                insert(Recording),
                [
                    {
                        "id": uuid.uuid4(),
                        "account_id": a,
                        "call_id": call,
                        "caller_id": caller,
                        "mandate_id": mandate_id,
                        "kind": "voicemail",
                        "provider_sid": f"RE{n}",
                        "storage_key": "bench",
                        "duration_s": 40,
                        "created_at": when,
                    }
                    for n, (call, caller, when) in enumerate(recs)
                ],
            )
    if rt.db.is_postgres:
        owner = os.environ.get("PERMANENCE_BENCH_MIGRATION_URL", rt.db.url)
        engine = create_engine(owner, poolclass=pool.NullPool)
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
        engine.dispose()
    else:
        with rt.db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    return rt, a


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    t0 = time.perf_counter()
    rt, account_id = build(args.calls)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    with rt.db.session(AccessContext.system("bench", account_id)) as s:
        hours = aggregates.rebuild(s, account_id)
    rebuilt = time.perf_counter() - t0
    ctx = AccessContext(Role.SUPERVISOR, "bench", uuid.uuid4(), account_id)
    where = stats.in_period(account_id, YEAR)

    def baseline() -> int:
        with rt.db.session(ctx, readonly=True) as s:
            return int(s.scalar(select(func.count()).select_from(Call).where(where)) or 0)

    def figures() -> stats.AccountStats:
        with rt.db.session(ctx, readonly=True) as s:
            return stats.account_statistics(s, account_id, YEAR)

    def scanned() -> stats.AccountStats:
        with rt.db.session(ctx, readonly=True) as s:
            return stats.scan_account_statistics(s, account_id, YEAR)

    def run(fn: object, repeat: int) -> list[float]:
        out = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()  # type: ignore[operator]
            out.append(time.perf_counter() - t)
        return out

    figures()  # warm the caches once, as a running server would have them
    scanned()
    base, full, scan = [], [], []
    for _ in range(args.repeat):  # interleaved: a busy machine slows all three alike
        base += run(baseline, 1)
        full += run(figures, 1)
        scan += run(scanned, 1)
    st = figures()
    equal = st.as_dict() == scanned().as_dict()
    backend = "PostgreSQL" if rt.db.is_postgres else "SQLite"
    med_base, med_full = statistics.median(base), statistics.median(full)
    print(f"database: {backend}; {args.calls:,} calls over 2025 inserted in {built:.1f} s")
    print(
        f"aggregates rebuilt from the rows (the migration's backfill): {hours:,} hours in "
        f"{rebuilt:.1f} s"
    )
    print(
        f"figures: received {st.calls.received:,}, answered {st.calls.answered:,}, "
        f"abandoned {st.calls.abandoned:,}, voicemail {st.calls.voicemail:,}, "
        f"messages {st.messages_taken:,}, appointments {st.appointments_booked:,}, "
        f"p90 answer {st.answer_s_p90:.1f} s"
    )
    print(f"baseline count(*) over the same rows: median {1000 * med_base:.1f} ms")
    med_scan = statistics.median(scan)
    print(
        f"account statistics for the year:      median {1000 * med_full:.1f} ms "
        f"(min {1000 * min(full):.1f}, max {1000 * max(full):.1f}; {args.repeat} runs), "
        f"{med_full / med_base:.2f}x the baseline"
    )
    print(
        f"the same figures scanning the rows:   median {1000 * med_scan:.1f} ms, "
        f"{med_scan / med_base:.1f}x the baseline; aggregates {med_scan / med_full:.1f}x faster; "
        f"figures {'equal' if equal else 'DIFFERENT'}"
    )
    verdict = "PASS" if med_full < LIMIT_S else "FAIL"
    print(f"{verdict}: {1000 * med_full:.0f} ms against a limit of {1000 * LIMIT_S:.0f} ms")
    rt.close()
    if verdict == "FAIL" or not equal:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
