"""Issue 2: sealing + blind-indexing a caller record costs at most 3x a plain insert.

Both sides insert the same caller row through SQLAlchemy Core into SQLite (WAL,
synchronous=NORMAL), measured in the same run:
- baseline: the row with its three identifiers in clear;
- sealed: a new data key (generated, wrapped by the account KEK, its row inserted), the
  identifiers normalised, sealed (AES-256-GCM with associated data) and blind-indexed
  (HMAC-SHA256, truncated), then the same row insert.
Both use Core inserts (the ORM's own overhead is the same on either side and not measured).
A third figure times the product's own code path, ``subjects.register`` (the ORM, the key
row, the audit entry), one transaction per caller, against the same plain insert: that is
what a new caller costs the service.
Once with one transaction per row (what a live call does: one caller registered per call),
which is the figure the target applies to, and once in batches of 1,000 for information:
there the insert is amortised to a few microseconds, below what phone-number parsing alone
costs (``phonenumbers``: ~17 µs, security.md), so no batched ratio near 3x is physically
possible with E.164 normalisation.

    .venv/bin/python -m bench.crypto_insert [--rows 3000]
"""

from __future__ import annotations

import argparse
import shutil
import time
import uuid

from sqlalchemy import Column, MetaData, String, Table, insert

from bench.common import fresh_runtime
from permanence.accounts.model import AccountKind
from permanence.accounts.service import create_account
from permanence.context import AccessContext, Role
from permanence.crypto import normalize
from permanence.crypto.model import SubjectKey
from permanence.db import utcnow
from permanence.subjects.model import Caller

plain_meta = MetaData()
plain = Table(
    "bench_plain_callers",
    plain_meta,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(36)),
    Column("created_at", String(40)),
    Column("updated_at", String(40)),
    Column("phone", String(20)),
    Column("email", String(254)),
    Column("name", String(200)),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=3000)
    args = ap.parse_args()
    rt, tmp = fresh_runtime()
    try:
        plain_meta.create_all(rt.db.engine)
        with rt.db.session(AccessContext(role=Role.ADMIN, reason="bench")) as s:
            account = create_account(
                s, rt.keyring, slug="bench", name="Bench", kind=AccountKind.OTHER
            )
        account_id = account.id
        ctx = AccessContext(role=Role.SYSTEM, reason="bench", account_id=account_id)
        people = [
            (
                f"06 39 98 {i // 100 % 100:02d} {i % 100:02d}",
                f"prenom{i}.nom@exemple.fr",
                f"Prénom{i} Nom{i}",
            )
            for i in range(args.rows)
        ]

        def plain_row(p: tuple[str, str, str]) -> dict[str, object]:
            now = utcnow().isoformat()
            return {
                "id": str(uuid.uuid4()),
                "account_id": str(account_id),
                "created_at": now,
                "updated_at": now,
                "phone": p[0],
                "email": p[1],
                "name": p[2],
            }

        def sealed_rows(s, p):  # type: ignore[no-untyped-def]
            cid = uuid.uuid4()
            cipher, key_row = rt.keyring.new_subject_key(s, account_id, cid)
            e164 = normalize.phone_e164(p[0])
            email = normalize.email(p[1])
            now = utcnow()
            return key_row, {
                "id": cid,
                "account_id": account_id,
                "created_at": now,
                "updated_at": now,
                "phone_bidx": rt.keyring.index(s, account_id, "callers", "phone", e164),
                "email_bidx": rt.keyring.index(s, account_id, "callers", "email", email),
                "name_bidx": rt.keyring.index(
                    s, account_id, "callers", "name", normalize.name(p[2])
                ),
                "phone_sealed": cipher.seal_text("callers", "phone", cid, e164),
                "email_sealed": cipher.seal_text("callers", "email", cid, email),
                "name_sealed": cipher.seal_json(
                    "callers", "name", cid, {"first": p[2].split()[0], "last": p[2].split()[1]}
                ),
            }

        def run_plain(batch: int) -> float:
            t0 = time.perf_counter()
            for i in range(0, len(people), batch):
                with rt.db.session(ctx) as s:
                    s.execute(insert(plain), [plain_row(p) for p in people[i : i + batch]])
            return time.perf_counter() - t0

        def run_sealed(batch: int) -> float:
            t0 = time.perf_counter()
            for i in range(0, len(people), batch):
                with rt.db.session(ctx) as s:
                    pairs = [sealed_rows(s, p) for p in people[i : i + batch]]
                    s.execute(insert(SubjectKey.__table__), [k for k, _ in pairs])
                    s.execute(insert(Caller.__table__), [c for _, c in pairs])
            return time.perf_counter() - t0

        print(f"rows per run: {args.rows} (SQLite WAL, synchronous=NORMAL)")
        print(f"{'mode':<28}{'plain µs/row':>14}{'sealed µs/row':>15}{'ratio':>8}")
        per_call = 0.0
        for label, batch in (("one transaction per row", 1), ("batches of 1,000 rows", 1000)):
            run_plain(batch)  # warm-up: page cache, statement cache
            run_sealed(batch)
            tp = min(run_plain(batch) for _ in range(3))
            ts = min(run_sealed(batch) for _ in range(3))
            ratio = ts / tp
            per_call = per_call or ratio
            n = len(people)
            print(f"{label:<28}{tp / n * 1e6:>14.1f}{ts / n * 1e6:>15.1f}{ratio:>7.2f}x")
        from permanence.subjects import service as subjects

        def run_register() -> float:
            t0 = time.perf_counter()
            for p in people:
                first, last = p[2].split()
                ident = subjects.Identity(first_name=first, last_name=last, phone=p[0], email=p[1])
                with rt.db.session(ctx) as s:
                    subjects.register(s, rt.keyring, ident)
            return time.perf_counter() - t0

        run_register()  # warm-up (its callers are new rows: the table grows as in service)
        tp = min(run_plain(1) for _ in range(3))
        tr = min(run_register() for _ in range(3))
        n = len(people)
        print(
            f"{'subjects.register, 1/tx':<28}{tp / n * 1e6:>14.1f}{tr / n * 1e6:>15.1f}"
            f"{tr / tp:>7.2f}x  (the product's code path)"
        )
        verdict = "PASS" if per_call <= 3 else "FAIL"
        print(
            f"one transaction per row: {per_call:.2f}x a plain insert (target <= 3.00x): {verdict}"
        )
        with rt.db.session(ctx, readonly=True) as s:
            assert s.query(SubjectKey).count() >= args.rows
    finally:
        rt.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
