"""Issue 6: one million due records swept in under 60 s on SQLite, with the rate printed.

Fixture: one account with the plumber's demo mandate, 1,000 callers, and N messages past
their retention period, bulk-inserted with SQLAlchemy Core (dummy sealed payloads: sealing
is not what is measured). Measured in the same run on two identical copies of the database:
- baseline: a plain ``DELETE … WHERE id IN (…)`` of the same rows, by batches of the same
  size, one transaction per batch (ids listed beforehand, so no search at all);
- sweep: ``retention.sweep`` — cutoffs from the mandate, due rows found by index range scan
  excluding legal holds, deleted by id batches, one audit entry per batch.

    .venv/bin/python -m bench.retention_sweep [--rows 1000000] [--batch 5000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
import uuid
from importlib import resources
from pathlib import Path

from sqlalchemy import delete, insert, select, text

from bench.common import fresh_runtime
from permanence.accounts.model import AccountKind
from permanence.accounts.service import create_account, import_mandate
from permanence.context import AccessContext, Role
from permanence.crypto.model import SubjectKey
from permanence.db import Database
from permanence.messages.model import Message
from permanence.recordings.storage import LocalStore
from permanence.retention import service as retention
from permanence.subjects.model import Caller


def demo_mandate_text(slug: str) -> str:
    return resources.files("permanence.demo").joinpath("mandates", f"{slug}.yaml").read_text()


def build(rows: int) -> tuple[str, uuid.UUID]:
    rt, _tmp = fresh_runtime()
    with rt.db.session(AccessContext(role=Role.ADMIN, reason="bench")) as s:
        account = create_account(
            s, rt.keyring, slug="plomberie-durand", name="Plomberie", kind=AccountKind.TRADES
        )
        mv = import_mandate(s, demo_mandate_text("plomberie-durand"), account_id=account.id)
    ctx = AccessContext.system("bench", account.id)
    mandate_id = mv.id
    with rt.db.session(ctx) as s:
        callers = [uuid.uuid4() for _ in range(1000)]
        for cid in callers:
            _c, key_row = rt.keyring.new_subject_key(s, account.id, cid)
            s.execute(insert(SubjectKey).values(**key_row))
        s.execute(
            insert(Caller),
            [{"id": c, "account_id": account.id} for c in callers],
        )
    old = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    chunk = 50_000
    with rt.db.session(ctx) as s:
        for start in range(0, rows, chunk):
            s.execute(
                insert(Message),
                [
                    {
                        "id": uuid.uuid4(),
                        "account_id": account.id,
                        "caller_id": callers[i % 1000],
                        "mandate_id": mandate_id,
                        "purpose": "intervention",
                        "payload_sealed": b"\x00" * 64,
                        "created_at": old + dt.timedelta(seconds=i),
                    }
                    for i in range(start, min(start + chunk, rows))
                ],
            )
    url = rt.db.url
    rt.close()
    return url, account.id


def copy_db(url: str, suffix: str) -> str:
    path = url.removeprefix("sqlite:///")
    target = path.replace(".db", f"-{suffix}.db")
    shutil.copy(path, target)
    return f"sqlite:///{target}"


def baseline(url: str, account_id: uuid.UUID, batch: int) -> tuple[int, float]:
    db = Database(url)
    ctx = AccessContext.system("bench", account_id)
    with db.session(ctx, readonly=True) as s:
        ids = list(s.scalars(select(Message.id).order_by(Message.created_at)))  # sweep order
    t0 = time.perf_counter()
    for i in range(0, len(ids), batch):
        with db.session(ctx) as s:
            s.execute(text(f"PRAGMA cache_size = -{retention.SQLITE_CACHE_KIB}"))  # as the sweep
            s.execute(delete(Message).where(Message.id.in_(ids[i : i + batch])))
    elapsed = time.perf_counter() - t0
    db.dispose()
    return len(ids), elapsed


def swept(url: str, batch: int, store_dir: str) -> tuple[int, float]:
    db = Database(url)
    t0 = time.perf_counter()
    report = retention.sweep(db, LocalStore(Path(store_dir)), batch=batch)
    elapsed = time.perf_counter() - t0
    db.dispose()
    return report.total, elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=5000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    url, account_id = build(args.rows)
    print(f"fixture: {args.rows:,} due messages built in {time.perf_counter() - t0:.1f} s")
    base_url, sweep_url = copy_db(url, "baseline"), copy_db(url, "sweep")
    n_base, t_base = baseline(base_url, account_id, args.batch)
    n_sweep, t_sweep = swept(sweep_url, args.batch, url.removeprefix("sqlite:///") + ".rec")
    assert n_base == n_sweep == args.rows, (n_base, n_sweep)
    print(
        f"baseline DELETE by id batches: {n_base:,} rows in {t_base:.1f} s "
        f"= {n_base / t_base:,.0f} rows/s"
    )
    print(
        f"retention sweep:               {n_sweep:,} rows in {t_sweep:.1f} s "
        f"= {n_sweep / t_sweep:,.0f} rows/s"
    )
    print(
        f"ratio sweep/baseline time: {t_sweep / t_base:.2f}x; target < 60 s: "
        f"{'met' if t_sweep < 60 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
