"""Issue 24: `permanence serve` answers its first 200 on /healthz within 1.5 s.

Measured from the process start to the first 200 on /healthz (polled every 10 ms), median of
REPEAT runs, on a migrated SQLite database in a temporary directory (removed at the end),
after one untimed start of each that writes the bytecode caches (as an installed package
has them; with PYTHONDONTWRITEBYTECODE every start would compile ~1,300 modules again).
Baseline, same run: a bare FastAPI app with one route under the same uvicorn — the floor of
starting Python, importing FastAPI and binding the port.

    .venv/bin/python -m bench.startup [--repeat 5]
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import free_port
from permanence import schema

BARE = """
from fastapi import FastAPI
app = FastAPI()
@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
"""


def first_ok(cmd: list[str], env: dict[str, str], port: int) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.TransportError:
                pass
            time.sleep(0.01)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="permanence-bench-"))
    try:
        (tmp / "bare_app.py").write_text(BARE)
        env = {
            **os.environ,
            "PERMANENCE_DATA_DIR": str(tmp / "data"),
            "PERMANENCE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "PERMANENCE_RETENTION_INTERVAL_MINUTES": "0",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp), os.environ.get("PYTHONPATH")])),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        (tmp / "data").mkdir()
        schema.upgrade(f"sqlite:///{tmp / 'data' / 'permanence.db'}")
        bare, serve = [], []
        for i in range(args.repeat + 1):
            port = free_port()
            b = first_ok(
                [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port)], env, port
            )
            port = free_port()
            s = first_ok(
                [sys.executable, "-m", "permanence", "serve", "--port", str(port)], env, port
            )
            if i:  # the first start of each wrote the bytecode caches
                bare.append(b)
                serve.append(s)
        b, s = statistics.median(bare), statistics.median(serve)
        print(f"start to first 200 on /healthz, median of {args.repeat} runs")
        print(f"{'bare FastAPI app (floor)':<34}{b:>8.2f} s   runs {[round(x, 2) for x in bare]}")
        print(f"{'permanence serve':<34}{s:>8.2f} s   runs {[round(x, 2) for x in serve]}")
        print(f"ratio: {s / b:.2f}x the bare app")
        print(f"start-up: {s:.2f} s (target < 1.5 s): {'PASS' if s < 1.5 else 'FAIL'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
