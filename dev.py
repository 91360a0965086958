#!/usr/bin/env python3
"""Set-up in one command, on a fresh machine that has only Python 3.11+.

    python3 dev.py start   install, initialise, load the demo data and serve on :8000
    python3 dev.py test    install with the test tools and run the whole test suite
    python3 dev.py mutate  mutation testing of the law and security core (tools/mutate.py)

Both create ./.venv and install the pinned dependencies (constraints.txt) only when they
changed, so running them again is fast. Extra arguments after ``test`` go to pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
DEMO_ADMIN = ("admin@permanence.example", "demo-admin-permanence")


def run(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        sys.exit(result.returncode)


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):
        sys.exit("Permanence needs Python 3.11 or newer")
    if not PY.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + (ROOT / "constraints.txt").read_bytes()
    ).hexdigest()
    stamp = VENV / f".install-stamp-{extras or 'base'}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    print("installing dependencies (pinned in constraints.txt) ...", flush=True)
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    target = f".[{extras}]" if extras else "."
    run(PY, "-m", "pip", "install", "--quiet", "-c", "constraints.txt", "-e", target)
    stamp.write_text(digest)


def start(args: list[str]) -> None:
    ensure_venv("")
    env = dict(os.environ)
    data = Path(env.setdefault("PERMANENCE_DATA_DIR", str(ROOT / "data")))
    # The demo stands for a deployment on HDS-certified hosting (its medical practice keeps
    # health data); a real deployment declares it only when its host is certified.
    env.setdefault("PERMANENCE_HDS_HOSTING", "true")
    cli = BIN / "permanence"
    if not (data / "master.key").exists() and not env.get("PERMANENCE_MASTER_KEY"):
        run(cli, "init", "--admin-email", DEMO_ADMIN[0], "--admin-password", DEMO_ADMIN[1], env=env)
        run(cli, "demo", env=env)
    run(cli, "serve", *args, env=env)


def test(args: list[str]) -> None:
    ensure_venv("test")
    run(PY, "-m", "pytest", *args)


def mutate(args: list[str]) -> None:
    ensure_venv("test,mutate")
    run(PY, str(ROOT / "tools" / "mutate.py"), *args)


def main() -> None:
    commands = {"start": start, "test": test, "mutate": mutate}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
