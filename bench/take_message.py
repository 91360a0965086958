"""Issue 3: taking a message — API call to stored, sealed, audited — sustains >= 200/s on
SQLite on this 2-core machine.

A real uvicorn server runs in a subprocess (one worker); a load generator in this process
keeps CONCURRENCY requests in flight. Two endpoints are measured in the same run:
- baseline: POST /bench/baseline — no authentication, no validation, no encryption, no
  audit: the same JSON body inserted into a plain table (what a naive service would do);
- product: POST /api/v1/accounts/{a}/calls/{c}/messages as a signed-in operator: session
  and CSRF checked, training gate, mandate validation, free-text screening, sealing under the
  caller's key, audit chain append — one transaction.

    .venv/bin/python -m bench.take_message [--requests 2000] [--concurrency 4]

With ``--without ledger,audit,stats`` the server skips those steps of taking a message (the
delivery ledger's rows, the audit append at commit, the statistics' hour rows): not a product
mode, a bound — what the message would cost if rewriting them made them free (ADR 0043).

With ``--cpu N`` it measures instead, in this process and without HTTP, the CPU time
(``time.process_time``) of N messages through the product's own unit of work and
``messages.take_message``, against N plain inserts of the same body: a ratio that other work
on the machine barely moves (wall-clock throughput does, on a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, event, insert

from bench.common import free_port, percentile
from permanence import schema
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.runtime import Runtime

plain_meta = MetaData()
plain = Table(
    "bench_plain_messages",
    plain_meta,
    Column("id", Integer, primary_key=True),
    Column("purpose", String(64)),
    Column("payload", Text),
)
VALUES = {
    "last_name": "Martin",
    "phone": "01 99 00 12 34",
    "address": "3 rue des Lilas, 44000 Nantes",
    "urgency": "à planifier",
    "description": "Fuite sous l'évier de la cuisine, intervention souhaitée cette semaine",
}


def bench_app() -> FastAPI:
    """The product's app plus the baseline route (bench only), from the environment."""
    import json

    from permanence.web.app import create_app

    rt = Runtime.from_settings(Settings())
    app = create_app(rt)
    _skip_steps(os.environ.get(WITHOUT_ENV, ""))

    @app.post("/bench/baseline", status_code=201)
    async def baseline(request: Request) -> dict[str, int]:
        body = await request.json()
        with rt.db.engine.begin() as conn:
            result = conn.execute(
                insert(plain), {"purpose": body["purpose"], "payload": json.dumps(body["values"])}
            )
        return {"id": int(result.inserted_primary_key[0])}

    return app


WITHOUT_ENV = "PERMANENCE_BENCH_WITHOUT"
STEPS = ("ledger", "audit", "stats")


def _skip_steps(names: str) -> None:
    """Bench only: make the named steps of taking a message do nothing, in this process."""
    from permanence import db
    from permanence.messages import service as messages

    skip = {n for n in names.split(",") if n}
    if unknown := skip - set(STEPS):
        raise SystemExit(f"--without: unknown step(s) {sorted(unknown)}; known: {STEPS}")
    if "ledger" in skip:
        messages.delivery.schedule = lambda *_a, **_k: None  # type: ignore[assignment]
    orders = set()
    if "audit" in skip:
        orders |= {db.COMMIT_AUDIT, db.COMMIT_LAST}
    if "stats" in skip:
        orders.add(db.COMMIT_STATS)
    db._commit_steps[:] = [(o, step) for o, step in db._commit_steps if o not in orders]


def _prepare(tmp: Path) -> tuple[dict[str, str], dict[str, str], str]:
    """Database with the plumber's account, a trained operator, an open call."""
    from tests.factories import make_account, signed_in_operator

    from permanence.calls import service as calls

    env = {
        "PERMANENCE_DATA_DIR": str(tmp),
        "PERMANENCE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    os.environ.update(env)
    schema.upgrade(f"sqlite:///{tmp / 'permanence.db'}")
    rt = Runtime.from_settings(Settings())
    plain_meta.create_all(rt.db.engine)
    account = make_account(rt, "plomberie-durand")
    operator_id, token, csrf = signed_in_operator(rt, "op@bench.example", "bench password 2026")
    ctx = AccessContext(role=Role.OPERATOR, reason="bench", actor_id=operator_id)
    with rt.db.session(ctx) as s:
        opened = calls.open_call(s, rt.keyring, dialled="+33240000001", caller_number="0199001234")
        url = f"/api/v1/accounts/{account.id}/calls/{opened.call.id}/messages"
    rt.close()
    headers = {"X-CSRF-Token": csrf}
    cookies = {"permanence_session": token}
    return headers, cookies, url


async def _load(
    base: str, url: str, n: int, concurrency: int, headers: dict[str, str], cookies: dict[str, str]
) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    body: dict[str, Any] = {"purpose": "intervention", "values": VALUES}

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t0 = time.perf_counter()
            r = await client.post(url, json=body)
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 201:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, headers=headers, cookies=cookies, limits=limits, timeout=30
    ) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return elapsed, latencies, errors


def _server_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) the server process has used so far; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_message(n: int, rounds: int = 3) -> None:
    """CPU time per message vs per plain insert, in process (best of ``rounds``)."""
    import json
    import uuid

    from sqlalchemy import select

    from permanence.calls import service as calls
    from permanence.messages import service as messages
    from permanence.staff.model import User

    tmp = Path(tempfile.mkdtemp(prefix="permanence-bench-"))
    try:
        _headers, _cookies, url = _prepare(tmp)
        rt = Runtime.from_settings(Settings())
        parts = url.split("/")
        account_id, call_id = uuid.UUID(parts[4]), uuid.UUID(parts[6])
        with rt.db.session(AccessContext.system("bench")) as s:
            operator = s.scalars(select(User.id).where(User.email == "op@bench.example")).one()
        ctx = AccessContext(
            role=Role.OPERATOR, reason="bench", actor_id=operator, account_id=account_id
        )
        body = json.dumps({"purpose": "intervention", "values": VALUES})

        def product() -> None:
            with rt.db.session(ctx) as s:
                call = calls.get_call(s, call_id)
                assert call.caller_id is not None
                messages.take_message(
                    s,
                    rt.keyring,
                    caller_id=call.caller_id,
                    purpose="intervention",
                    values=VALUES,
                    call_id=call.id,
                )

        def baseline() -> None:
            with rt.db.engine.begin() as conn:
                conn.execute(insert(plain), {"purpose": "intervention", "payload": body})

        for _ in range(50):
            product()
            baseline()
        statements: list[str] = []

        def count(_conn: Any, _cur: Any, stmt: str, *_a: Any) -> None:
            statements.append(stmt.split(None, 1)[0].upper())

        event.listen(rt.db.engine, "before_cursor_execute", count)
        product()
        event.remove(rt.db.engine, "before_cursor_execute", count)
        best: dict[str, float] = {}
        for _ in range(rounds):
            for name, fn in (("baseline", baseline), ("product", product)):
                t0 = time.process_time()
                for _ in range(n):
                    fn()
                per = (time.process_time() - t0) / n
                best[name] = min(best.get(name, per), per)
        rt.close()
        b, p = best["baseline"], best["product"]
        print(f"CPU time per message, in process, best of {rounds} rounds of {n}")
        print(f"{'plain insert (baseline)':<34}{b * 1e6:>10.0f} us")
        print(f"{'take message (unit of work)':<34}{p * 1e6:>10.0f} us")
        print(
            f"ratio: a message costs {p / b:.1f}x a plain insert ({1 / p:,.0f} messages/s of CPU)"
        )
        kinds = {k: statements.count(k) for k in sorted(set(statements))}
        print(f"SQL statements per message: {len(statements)} {kinds}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--cpu", type=int, default=0, help="in-process CPU time of N messages")
    ap.add_argument(
        "--without",
        default="",
        help=f"bench only: the server skips these steps ({','.join(STEPS)}), to bound a rewrite",
    )
    args = ap.parse_args()
    if unknown := {n for n in args.without.split(",") if n} - set(STEPS):
        ap.error(f"--without: unknown step(s) {sorted(unknown)}; known: {','.join(STEPS)}")
    if args.cpu:
        cpu_per_message(args.cpu)
        return
    tmp = Path(tempfile.mkdtemp(prefix="permanence-bench-"))
    port = free_port()
    server = None
    try:
        headers, cookies, url = _prepare(tmp)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "bench.take_message:bench_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env={**os.environ, WITHOUT_ENV: args.without},
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        rows = []
        for label, path in (
            ("baseline (no auth, clear)", "/bench/baseline"),
            ("take message", url),
        ):
            asyncio.run(_load(base, path, 100, args.concurrency, headers, cookies))  # warm-up
            cpu0 = _server_cpu(server.pid)
            elapsed, lat, errors = asyncio.run(
                _load(base, path, args.requests, args.concurrency, headers, cookies)
            )
            cpu1 = _server_cpu(server.pid)
            cpu = None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / args.requests
            p50, p99 = percentile(lat, 50), percentile(lat, 99)
            rows.append((label, args.requests / elapsed, p50, p99, errors, cpu))
        print(
            f"{args.requests} requests per endpoint, {args.concurrency} in flight, "
            "uvicorn (1 worker) + SQLite WAL, 2 cores shared with the load generator"
            + (f"; WITHOUT {args.without} (a bound, not the product)" if args.without else "")
        )
        print(
            f"{'endpoint':<28}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
            f"{'server CPU ms/req':>19}"
        )
        for label, rate, p50, p99, errors, cpu in rows:
            cpu_text = "n/a" if cpu is None else f"{cpu * 1000:.2f}"
            print(
                f"{label:<28}{rate:>9.0f}{p50 * 1000:>9.1f}{p99 * 1000:>9.1f}{errors:>8}"
                f"{cpu_text:>19}"
            )
        base_rate, rate = rows[0][1], rows[1][1]
        ratio = rate / base_rate
        print(
            f"ratio to baseline: {ratio:.2f}x the throughput, "
            f"{rows[1][2] / rows[0][2]:.2f}x the median latency"
        )
        if rows[0][5] and rows[1][5]:
            # The server's own CPU per request: what the load generator sharing the two cores
            # does not move as much as it moves the baseline's throughput.
            share = rows[0][5] / rows[1][5]
            print(f"server CPU per request: the baseline's is {share:.2f}x a message's")
        ok = rate >= 200 and rows[1][4] == 0
        if args.without:
            print(f"WITHOUT {args.without}: a bound, not the product; no verdict")
            return
        print(
            f"take message: {rate:.0f} messages/s (target >= 200/s, no error): "
            f"{'PASS' if ok else 'FAIL'}"
        )
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        print(
            f"take message: {ratio:.2f}x the baseline's throughput (target >= 0.5x): "
            f"{'PASS' if ratio >= 0.5 else 'FAIL'}"
            + (
                f" (load average {load:.1f} at the end: other work slows the baseline more "
                "than the message, so the ratio only counts on an idle machine)"
                if load > 1.0
                else ""
            )
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
