"""Every benchmark of docs/performance.md's first table, one after the other, on one machine.

Each bench runs as its own process with the command the table names; what it prints is kept
whole, headed by the commit, the time and the load average before and after it, so the table
can be re-measured on one date, on one commit, and read against the load it ran under.

    .venv/bin/python -m bench.table [--only take_message,startup] [--out FILE]

PostgreSQL rows run when ``PERMANENCE_BENCH_DATABASE_URL``, ``PERMANENCE_BENCH_MIGRATION_URL``
and ``PERMANENCE_BENCH_APP_ROLE`` name a disposable database (its schema is dropped); they are
skipped, and say so, otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

PG_ENV = (
    "PERMANENCE_BENCH_DATABASE_URL",
    "PERMANENCE_BENCH_MIGRATION_URL",
    "PERMANENCE_BENCH_APP_ROLE",
)


def _pg_args() -> list[str]:
    url, migration, role = (os.environ[name] for name in PG_ENV)
    return ["--reset", "--database-url", url, "--migration-url", migration, "--app-role", role]


# (name, module, arguments, database): "sqlite" runs with the PostgreSQL variables removed;
# "pg" hands them to the bench (load takes them as arguments, the others read the variables).
BENCHES: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("startup", "startup", ("--repeat", "5"), "sqlite"),
    ("crypto_insert", "crypto_insert", (), "sqlite"),
    ("take_message", "take_message", ("--requests", "1000"), "sqlite"),
    ("take_message_cpu", "take_message", ("--cpu", "300"), "sqlite"),
    ("audit_verify", "audit_verify", ("--entries", "100000", "--repeat", "3"), "sqlite"),
    ("load_sqlite", "load", (), "sqlite"),
    ("load_pg_1", "load", ("--workers", "1"), "pg"),
    ("load_pg_2", "load", ("--workers", "2"), "pg"),
    ("pages", "pages", ("--repeat", "200"), "sqlite"),
    ("stats_year", "stats_year", (), "sqlite"),
    ("stats_year_pg", "stats_year", (), "pg"),
    ("backup", "backup", (), "sqlite"),
    ("pii_eval", "pii_eval", ("--no-presidio",), "sqlite"),
    ("retention_sweep", "retention_sweep", (), "sqlite"),
    ("rights_lookup", "rights_lookup", (), "sqlite"),
    ("rights_lookup_pg", "rights_lookup", (), "pg"),
)


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True)
    return out.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def _load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--only", default="", help="comma-separated names: " + ",".join(b[0] for b in BENCHES)
    )
    ap.add_argument("--out", type=Path, help="also write the report to this file")
    args = ap.parse_args()
    names = {n for n in args.only.split(",") if n}
    if unknown := names - {b[0] for b in BENCHES}:
        ap.error(f"--only: unknown bench(es) {sorted(unknown)}")
    has_pg = all(os.environ.get(name) for name in PG_ENV)
    lines = [
        f"# bench.table: commit {_commit()}, {sys.platform}, {os.cpu_count()} cores, "
        f"started {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
    ]
    print(lines[0], flush=True)
    sqlite_env = {k: v for k, v in os.environ.items() if k not in PG_ENV}
    for name, module, bench_args, database in BENCHES:
        if names and name not in names:
            continue
        needs_pg = database == "pg"
        if needs_pg and not has_pg:
            text = f"\n## {name}: skipped (set {', '.join(PG_ENV)} to a disposable database)"
            print(text, flush=True)
            lines.append(text)
            continue
        argv = [sys.executable, "-m", f"bench.{module}", *bench_args]
        if needs_pg and module == "load":
            argv += _pg_args()
        shown = " ".join(
            ["python", "-m", f"bench.{module}", *bench_args]
            + (["<PostgreSQL>"] if needs_pg else [])
        )
        before, t0 = _load(), time.perf_counter()
        env = dict(os.environ) if needs_pg else sqlite_env
        run = subprocess.run(argv, capture_output=True, text=True, env=env)
        took = time.perf_counter() - t0
        head = (
            f"\n## {name}: `{shown}`\n"
            f"{datetime.now(UTC):%H:%M} UTC, {took:.0f} s, load before {before}, after {_load()}"
            + ("" if run.returncode == 0 else f", EXIT {run.returncode}")
        )
        body = run.stdout.rstrip() + (("\n" + run.stderr.rstrip()) if run.returncode else "")
        print(head + "\n" + body, flush=True)
        lines += [head, body]
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
