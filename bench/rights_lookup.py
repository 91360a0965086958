"""Finding one data subject's records among 1,000,000 (100,000 callers, one account), and
building an access package for a subject with 50 records.

    python -m bench.rights_lookup                      # SQLite in a temporary directory
    PERMANENCE_BENCH_DATABASE_URL=postgresql+psycopg://app@host/db \
    PERMANENCE_BENCH_MIGRATION_URL=postgresql+psycopg://owner@host/db \
    PERMANENCE_BENCH_APP_ROLE=app python -m bench.rights_lookup   # a disposable PostgreSQL DB

The callers' identifiers are really sealed and blind-indexed (the lookup opens its candidates
for real); the records' payloads are dummy bytes (the lookup never opens them). The baseline
(the floor) is the same lookup on a clear column: the phone numbers in a plain table with an
exact index on (account, phone), then the caller's records by caller id — so the ratio says
what blind indexing and sealing cost over a service that kept the numbers in clear. A full
scan that opens every caller's number is shown once, for scale.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from typing import Any

from sqlalchemy import (
    Column,
    Index,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    pool,
    select,
    text,
)
from tests.factories import demo_mandate_text

from bench.common import fresh_runtime
from permanence.accounts.model import AccountKind
from permanence.accounts.service import create_account, import_mandate, mandate_version
from permanence.calls.model import Call
from permanence.consents.model import Consent
from permanence.context import AccessContext, Role
from permanence.crypto import normalize
from permanence.crypto.model import SubjectKey
from permanence.db import utcnow
from permanence.messages.model import Appointment, Message
from permanence.rights import service as rights
from permanence.rights.lookup import records_of
from permanence.rights.model import Kind
from permanence.runtime import Runtime
from permanence.subjects.model import Caller

clear_meta = MetaData()
clear_callers = Table(
    "bench_clear_callers",
    clear_meta,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(36)),
    Column("phone", String(20)),
    Index("ix_bench_clear_callers_account_phone", "account_id", "phone"),
)

PER_CALLER = (("calls", 4), ("messages", 4), ("appointments", 1), ("consents", 1))


def phone_of(i: int) -> str:
    return f"+336{10_000_000 + i:08d}"


def _create_clear_table(rt: Runtime) -> None:
    """The floor's plain table. On PostgreSQL the owner creates it (the application role may
    not create tables) and lets the application role use it."""
    owner = os.environ.get("PERMANENCE_BENCH_MIGRATION_URL")
    if not rt.db.is_postgres or not owner:
        clear_meta.create_all(rt.db.engine)
        return
    engine = create_engine(owner, poolclass=pool.NullPool)
    clear_meta.create_all(engine)
    role = os.environ.get("PERMANENCE_BENCH_APP_ROLE")
    if role:
        with engine.begin() as conn:
            conn.execute(text(f'GRANT SELECT, INSERT ON {clear_callers.name} TO "{role}"'))
    engine.dispose()


def build(rt: Runtime, callers: int) -> tuple[uuid.UUID, uuid.UUID]:
    admin = AccessContext(role=Role.ADMIN, reason="bench")
    with rt.db.session(admin) as s:
        account = create_account(
            s, rt.keyring, slug="plomberie-durand", name="Plomberie Durand", kind=AccountKind.TRADES
        )
        import_mandate(s, demo_mandate_text("plomberie-durand"), account_id=account.id)
        account_id = account.id
    ctx = AccessContext.system("bench", account_id)
    with rt.db.session(ctx, readonly=True) as s:
        mandate_id = mandate_version(s, account_id)[0].id
    now = utcnow()
    batch = 5000
    dummy = b"\x00" * 48
    _create_clear_table(rt)
    for start in range(0, callers, batch):
        clear_rows: list[dict[str, Any]] = []
        caller_rows: list[dict[str, Any]] = []
        key_rows: list[dict[str, Any]] = []
        recs: dict[str, list[dict[str, Any]]] = {k: [] for k, _ in PER_CALLER}
        with rt.db.session(ctx) as s:
            for i in range(start, min(start + batch, callers)):
                cid = uuid.uuid4()
                cipher, key_row = rt.keyring.new_subject_key(s, account_id, cid)
                e164, bidx = rt.keyring.phone_index(s, account_id, "callers", phone_of(i))
                key_rows.append(key_row)
                clear_rows.append({"id": str(cid), "account_id": str(account_id), "phone": e164})
                caller_rows.append(
                    {
                        "id": cid,
                        "account_id": account_id,
                        "created_at": now,
                        "updated_at": now,
                        "phone_bidx": bidx,
                        "phone_sealed": cipher.seal_text("callers", "phone", cid, e164),
                    }
                )
                common = {"account_id": account_id, "caller_id": cid, "mandate_id": mandate_id}
                for _ in range(4):
                    recs["calls"].append({**common, "id": uuid.uuid4(), "started_at": now})
                    recs["messages"].append(
                        {
                            **common,
                            "id": uuid.uuid4(),
                            "purpose": "intervention",
                            "payload_sealed": dummy,
                            "created_at": now,
                        }
                    )
                recs["appointments"].append(
                    {
                        **common,
                        "id": uuid.uuid4(),
                        "purpose": "appointment",
                        "starts_at": now,
                        "ends_at": now,
                        "payload_sealed": dummy,
                        "created_at": now,
                    }
                )
                recs["consents"].append(
                    {
                        **common,
                        "id": uuid.uuid4(),
                        "purpose": "satisfaction",
                        "wording_version": "2025-1",
                        "channel": "voice",
                        "given_at": now,
                    }
                )
            s.execute(insert(clear_callers), clear_rows)
            s.execute(insert(SubjectKey), key_rows)
            s.execute(insert(Caller), caller_rows)
            for model, name in ((Call, "calls"), (Message, "messages")):
                s.execute(insert(model), recs[name])
            s.execute(insert(Appointment), recs["appointments"])
            s.execute(insert(Consent), recs["consents"])
    return account_id, mandate_id


def clear_lookup(rt: Runtime, account_id: uuid.UUID, phone: str) -> int:
    """The floor: the caller by an exact index on its number in clear, then its records as
    the product reads them."""
    wanted = normalize.phone_e164(phone)
    with rt.db.session(AccessContext.system("bench", account_id), readonly=True) as s:
        found = (
            s.execute(
                select(clear_callers.c.id).where(
                    clear_callers.c.account_id == str(account_id), clear_callers.c.phone == wanted
                )
            )
            .scalars()
            .all()
        )
        for cid in found:
            # The caller's row, then its records by the product's own query (records_of): the
            # floor differs from the product only in how the caller is found.
            caller = s.get(Caller, uuid.UUID(cid))
            assert caller is not None
            records_of(s, caller)
    return len(found)


def full_scan(rt: Runtime, account_id: uuid.UUID, phone: str) -> int:
    """The baseline: open every caller's phone number and compare."""
    wanted = normalize.phone_e164(phone)
    found = 0
    with rt.db.session(AccessContext.system("bench", account_id), readonly=True) as s:
        for caller in s.scalars(select(Caller).where(Caller.account_id == account_id)):
            cipher = rt.keyring.cipher(s, account_id, caller.id)
            if (
                caller.phone_sealed
                and cipher.open_text("callers", "phone", caller.id, caller.phone_sealed) == wanted
            ):
                found += 1
    return found


def rich_subject(rt: Runtime, account_id: uuid.UUID) -> uuid.UUID:
    """A caller with 50 records whose payloads are really sealed (the package opens them)."""
    from tests.factories import ensure_trained_operator

    from permanence.messages import service as messages
    from permanence.subjects import service as subjects

    op = ensure_trained_operator(rt)
    ctx = AccessContext(role=Role.OPERATOR, reason="bench", actor_id=op, account_id=account_id)
    with rt.db.session(ctx) as s:
        caller, _ = subjects.register(
            s,
            rt.keyring,
            subjects.Identity(
                first_name="Camille", last_name="Martin", phone="0199001234", email="c@exemple.fr"
            ),
        )
        for n in range(30):
            messages.take_message(
                s,
                rt.keyring,
                caller_id=caller.id,
                purpose="intervention",
                values={
                    "last_name": "Martin",
                    "phone": "0199001234",
                    "address": "1 rue A, 44000 Nantes",
                    "urgency": "à planifier",
                    "description": f"Fuite numéro {n}",
                },
            )
        now = utcnow()
        mandate_id = mandate_version(s, account_id)[0].id
        for _ in range(20):
            s.add(
                Call(
                    id=uuid.uuid4(),
                    account_id=account_id,
                    caller_id=caller.id,
                    mandate_id=mandate_id,
                    started_at=now,
                )
            )
        return caller.id


def access_package(rt: Runtime, account_id: uuid.UUID, caller_id: uuid.UUID) -> float:
    ctx = AccessContext(
        role=Role.CLIENT, reason="bench", actor_id=uuid.uuid4(), account_id=account_id
    )
    outbox = rights.Outbox.from_settings(rt.settings)
    with rt.db.session(ctx) as s:
        req = rights.submit(
            s,
            rt.keyring,
            rights.Intake(
                kind=Kind.ACCESS,
                requester=rights.Requester(phone="0199001234"),
                verified_by_controller=True,
            ),
        )
        request_id = req.id
    t0 = time.perf_counter()
    done = rights.run_execute(rt, outbox, ctx, request_id)
    elapsed = time.perf_counter() - t0
    assert done.outcome["messages"] == 30 and done.outcome["calls"] == 20, done.outcome
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--callers", type=int, default=100_000)
    ap.add_argument("--lookups", type=int, default=50)
    args = ap.parse_args()
    url = os.environ.get("PERMANENCE_BENCH_DATABASE_URL")
    rt, _tmp = fresh_runtime(url)
    backend = "PostgreSQL" if rt.db.is_postgres else "SQLite"
    t0 = time.perf_counter()
    account_id, _mid = build(rt, args.callers)
    records = args.callers * sum(n for _, n in PER_CALLER)
    print(
        f"[{backend}] fixture: {args.callers:,} callers, {records:,} records "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    ctx = AccessContext.system("bench", account_id)
    rng = random.Random(7)
    timings = []
    for _ in range(args.lookups):
        i = rng.randrange(args.callers)
        t = time.perf_counter()
        with rt.db.session(ctx, readonly=True) as s:
            found = rights.find_records(s, rt.keyring, phone=phone_of(i))
        timings.append(time.perf_counter() - t)
        assert len(found) == 1 and len(found[0].messages) == 4, len(found)
    median = statistics.median(timings)
    floor = []
    for _ in range(args.lookups):
        i = rng.randrange(args.callers)
        t = time.perf_counter()
        assert clear_lookup(rt, account_id, phone_of(i)) == 1
        floor.append(time.perf_counter() - t)
    floor_median = statistics.median(floor)
    t = time.perf_counter()
    scanned = full_scan(rt, account_id, phone_of(rng.randrange(args.callers)))
    scan = time.perf_counter() - t
    assert scanned == 1
    print(
        f"[{backend}] lookup by phone (blind index + records by caller id): "
        f"median {median * 1000:.1f} ms, max {max(timings) * 1000:.1f} ms over {len(timings)}"
    )
    print(
        f"[{backend}] floor, the same lookup on an exact index of the number in clear: "
        f"median {floor_median * 1000:.1f} ms; ratio blind index / clear = "
        f"{median / floor_median:.2f}x"
    )
    print(
        f"[{backend}] full scan opening all {args.callers:,} callers: {scan * 1000:.0f} ms "
        f"(one run); ratio full scan / lookup = {scan / median:,.0f}x"
    )
    caller = rich_subject(rt, account_id)
    pkg = access_package(rt, account_id, caller)
    print(f"[{backend}] access package for a subject with 50 records: {pkg * 1000:.0f} ms")
    print(f"{'PASS' if median < 0.050 else 'FAIL'} lookup median < 50 ms ({backend})")
    print(f"{'PASS' if pkg < 1.0 else 'FAIL'} access package < 1 s ({backend})")
    rt.close()


if __name__ == "__main__":
    main()
