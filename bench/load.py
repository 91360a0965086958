"""Load: 50 operators taking messages and 20 client users reading them, at once.

A real server (uvicorn, one worker, from ``permanence.web.app:from_environment``) runs in a
subprocess over SQLite (default) or PostgreSQL; this process plays every user with asyncio
and httpx. Each operator takes a message every ``--operator-interval`` seconds on its own
call; each client user alternately lists its messages and opens one every
``--client-interval`` seconds. Target: p95 under 100 ms and no error, for both kinds.

Baseline, same run and same server, first: the same users at the same rates on two plain
endpoints added for the benchmark — operators POST the same body into a plain table (no
authentication, validation, sealing or audit), client users read that table's last 20 rows.
``--workers N`` runs N server processes (PostgreSQL only, as ``permanence serve --workers``).

    .venv/bin/python -m bench.load [--duration 30] [--workers 1]
    # PostgreSQL (a disposable database; --reset drops its schema first):
    .venv/bin/python -m bench.load --reset --app-role permanence_app \\
        --database-url postgresql+psycopg://permanence_app@127.0.0.1/permanence_bench \\
        --migration-url postgresql+psycopg://permanence_owner@127.0.0.1/permanence_bench
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

import httpx
from fastapi import FastAPI, Request
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, insert, select, text

from bench.common import free_port, percentile, reset_postgresql
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


def bench_app() -> FastAPI:
    """The product's app (``from_environment``) plus the two baseline endpoints."""
    import json

    from permanence.web.app import from_environment

    app = from_environment()
    engine = app.state.rt.db.engine

    @app.post("/bench/baseline", status_code=201)
    async def baseline(request: Request) -> dict[str, int]:
        body = await request.json()
        with engine.begin() as conn:
            result = conn.execute(
                insert(plain), {"purpose": body["purpose"], "payload": json.dumps(body["values"])}
            )
        return {"id": int(result.inserted_primary_key[0])}

    @app.get("/bench/baseline")
    def baseline_read() -> list[dict[str, object]]:
        with engine.connect() as conn:
            rows = conn.execute(select(plain).order_by(plain.c.id.desc()).limit(20)).all()
        return [dict(r._mapping) for r in rows]

    return app


VALUES = {
    "last_name": "Martin",
    "phone": "01 99 00 12 34",
    "address": "3 rue des Lilas, 44000 Nantes",
    "urgency": "à planifier",
    "description": "Fuite sous l'évier de la cuisine, intervention souhaitée cette semaine",
}
PASSWORD = "mot de passe de charge 2026"


def _prepare(
    settings: Settings, operators: int, clients: int
) -> tuple[str, list[tuple[str, str, str]], list[tuple[str, str]]]:
    """The plumber's account; trained operators each on a call; client users; all signed in.

    Returns (account id, [(token, csrf, message url)] per operator, [(token, csrf)] per client).
    """
    import pyotp
    from tests.factories import make_account

    from permanence.calls import service as calls
    from permanence.staff import auth
    from permanence.staff.service import create_user
    from permanence.staff.training import record_training, sign_undertaking

    rt = Runtime.from_settings(settings)
    account = make_account(rt, "plomberie-durand")
    ops: list[tuple[str, str, str]] = []
    users: list[tuple[str, str]] = []
    for i in range(operators + clients):
        is_op = i < operators
        email = f"{'op' if is_op else 'client'}{i}@load.example"
        with rt.db.session(AccessContext(role=Role.ADMIN, reason="bench")) as s:
            new = create_user(
                s,
                rt.keyring,
                email=email,
                display_name=email,
                password=PASSWORD,
                role=Role.OPERATOR if is_op else Role.CLIENT,
                account_id=None if is_op else account.id,
            )
            if is_op:
                record_training(s, new.user.id)
                sign_undertaking(s, new.user.id)
        code = pyotp.parse_uri(new.totp_uri).now() if new.totp_uri else None
        with rt.db.session(AccessContext.system("bench")) as s:
            signed = auth.sign_in(s, rt.keyring, email=email, password=PASSWORD, totp_code=code)
            assert signed is not None
        if is_op:
            ctx = AccessContext(role=Role.OPERATOR, reason="bench", actor_id=new.user.id)
            with rt.db.session(ctx) as s:
                call = calls.open_call(
                    s,
                    rt.keyring,
                    dialled="+33240000001",
                    caller_number=f"01 99 00 {i // 100:02d} {i % 100:02d}",
                ).call
            url = f"/api/v1/accounts/{account.id}/calls/{call.id}/messages"
            ops.append((signed.token, signed.csrf_token, url))
        else:
            users.append((signed.token, signed.csrf_token))
    rt.close()
    return str(account.id), ops, users


async def _run(
    base: str,
    account_id: str,
    ops: list[tuple[str, str, str]],
    users: list[tuple[str, str]],
    duration: float,
    op_interval: float,
    client_interval: float,
    baseline: bool = False,
) -> dict[str, tuple[list[float], int]]:
    results: dict[str, tuple[list[float], int]] = {
        "take message": ([], 0),
        "read messages": ([], 0),
    }
    if baseline:
        ops = [(t, c, "/bench/baseline") for t, c, _ in ops]
    end = time.monotonic() + duration
    limits = httpx.Limits(max_connections=len(ops) + len(users))

    async def timed(kind: str, request: object) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            r: httpx.Response = await request  # type: ignore[misc]
        except httpx.HTTPError:
            lat, errs = results[kind]
            results[kind] = (lat, errs + 1)
            return None
        lat, errs = results[kind]
        lat.append(time.perf_counter() - t0)
        if r.status_code >= 300:
            errs += 1
        results[kind] = (lat, errs)
        return r

    async def operator(client: httpx.AsyncClient, token: str, csrf: str, url: str) -> None:
        await asyncio.sleep(op_interval * (hash(token) % 1000) / 1000)  # spread the starts
        while time.monotonic() < end:
            t0 = time.monotonic()
            await timed(
                "take message",
                client.post(
                    url,
                    json={"purpose": "intervention", "values": VALUES},
                    headers={"X-CSRF-Token": csrf},
                    cookies={"permanence_session": token},
                ),
            )
            await asyncio.sleep(max(0.0, op_interval - (time.monotonic() - t0)))

    async def reader(client: httpx.AsyncClient, token: str) -> None:
        await asyncio.sleep(client_interval * (hash(token) % 1000) / 1000)
        cookies = {"permanence_session": token}
        listing = "/bench/baseline" if baseline else f"/api/v1/accounts/{account_id}/messages"
        opened = baseline  # the baseline lists only
        while time.monotonic() < end:
            t0 = time.monotonic()
            r = await timed(
                "read messages", client.get(listing, params={"limit": 20}, cookies=cookies)
            )
            if r is not None and r.status_code == 200 and r.json() and not opened:
                await timed(
                    "read messages", client.get(f"{listing}/{r.json()[0]['id']}", cookies=cookies)
                )
            opened = baseline or not opened
            await asyncio.sleep(max(0.0, client_interval - (time.monotonic() - t0)))

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        await asyncio.gather(
            *(operator(client, *o) for o in ops), *(reader(client, t) for t, _ in users)
        )
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--operators", type=int, default=50)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--operator-interval", type=float, default=2.0)
    ap.add_argument("--client-interval", type=float, default=1.0)
    ap.add_argument("--database-url")
    ap.add_argument("--migration-url")
    ap.add_argument("--app-role")
    ap.add_argument("--reset", action="store_true", help="drop the PostgreSQL schema first")
    ap.add_argument("--workers", type=int, default=1, help="server processes (PostgreSQL)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="permanence-load-"))
    url = args.database_url or f"sqlite:///{tmp / 'permanence.db'}"
    owner = args.migration_url or url
    if args.reset and url.startswith("postgresql"):
        reset_postgresql(owner)
    schema.upgrade(owner, args.app_role)
    from sqlalchemy import create_engine, pool

    engine = create_engine(owner, poolclass=pool.NullPool)
    with engine.begin() as conn:
        plain_meta.drop_all(conn)
        plain_meta.create_all(conn)
        if args.app_role and url.startswith("postgresql"):
            conn.execute(text(f"GRANT SELECT, INSERT ON bench_plain_messages TO {args.app_role}"))
            conn.execute(
                text(f"GRANT USAGE ON SEQUENCE bench_plain_messages_id_seq TO {args.app_role}")
            )
    engine.dispose()
    env = {
        **os.environ,
        "PERMANENCE_DATA_DIR": str(tmp),
        "PERMANENCE_DATABASE_URL": url,
        "PERMANENCE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "PERMANENCE_DELIVERY_INTERVAL": "0",
        "PERMANENCE_RETENTION_INTERVAL_MINUTES": "0",
        "PERMANENCE_LOG_LEVEL": "WARNING",
    }
    settings = Settings(data_dir=tmp, database_url=url, master_key=env["PERMANENCE_MASTER_KEY"])
    server = None
    try:
        print("preparing users (argon2id: a few seconds) ...", flush=True)
        account_id, ops, users = _prepare(settings, args.operators, args.clients)
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "bench.load:bench_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--workers",
                str(args.workers),
            ],
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        phases = {}
        for phase, is_baseline in (("baseline", True), ("product", False)):
            phases[phase] = asyncio.run(
                _run(
                    base,
                    account_id,
                    ops,
                    users,
                    args.duration,
                    args.operator_interval,
                    args.client_interval,
                    baseline=is_baseline,
                )
            )
        backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        print(
            f"{backend}: {args.operators} operators (a message every {args.operator_interval:g} s) "
            f"and {args.clients} client users (a read every {args.client_interval:g} s) for "
            f"{args.duration:g} s per phase; uvicorn {args.workers} worker(s); load generator "
            "on the same 2 cores"
        )
        header = ("count", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors")
        print(f"{'requests':<26}{header[0]:>7}" + "".join(f"{h:>8}" for h in header[1:]))
        ok = True
        p95s: dict[tuple[str, str], float] = {}
        for phase, results in phases.items():
            for kind, (lat, errors) in results.items():
                p95 = percentile(lat, 95) if lat else float("inf")
                p95s[(phase, kind)] = p95
                if phase == "product":
                    ok = ok and p95 < 0.1 and errors == 0
                label = f"{kind} ({phase})"
                print(
                    f"{label:<26}{len(lat):>7}{len(lat) / args.duration:>8.1f}"
                    f"{percentile(lat, 50) * 1000 if lat else 0:>8.1f}{p95 * 1000:>8.1f}"
                    f"{percentile(lat, 99) * 1000 if lat else 0:>8.1f}{errors:>8}"
                )
        for kind in ("take message", "read messages"):
            ratio = p95s[("product", kind)] / p95s[("baseline", kind)]
            print(f"p95 ratio to baseline, {kind}: {ratio:.2f}x")
        print(f"p95 < 100 ms and no error for both: {'PASS' if ok else 'FAIL'}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
