"""Issue 24: `permanence serve` answers its first request without importing what that answer
does not need. httpx (with rich and pygments through its command line), holidays,
cryptography's x509, Jinja2 and PyYAML are imported where they are used: a provider or webhook
call, a mandate's opening hours, the OpenDSR certificate, the first page or document rendered,
the first mandate read or written. And
`permanence serve` runs in a command tree of its own, which Typer builds in a fraction of the
whole tree's time, answering as the whole tree does (docs/performance.md, "Issue 24, fifth
pass: start-up")."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from permanence.cli import app, command_for
from permanence.cli.serve import serve
from permanence.config import Settings
from tests.conftest import cli_env, free_port

# Imported only when used; each was imported at start before (tens of ms of CPU in all).
LAZY = ("httpx", "rich", "pygments", "holidays", "cryptography.x509", "jinja2", "yaml")

IMPORTED = f"""
import sys
import permanence.cli
import permanence.cli.serve
import permanence.web.app
print(" ".join(m for m in {LAZY!r} if m in sys.modules))
"""

# `permanence serve` in this process; at its first 200 on /healthz (asked over a bare socket:
# an HTTP client would import what is looked for), the modules already imported.
FIRST_ANSWER = f"""
import os, socket, sys, threading, time

PORT = int(sys.argv[1])


def first_answer():
    ask = b"GET /healthz HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", PORT), timeout=1) as s:
                s.sendall(ask)
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    loaded = [m for m in {LAZY!r} if m in sys.modules]
                    print("loaded:", *loaded, flush=True)
                    os._exit(0)
        except OSError:
            time.sleep(0.05)
    print("no answer", flush=True)
    os._exit(1)

threading.Thread(target=first_answer, daemon=True).start()
sys.argv = ["permanence", "serve", "--host", "127.0.0.1", "--port", str(PORT)]
from permanence.cli import main
main()
"""


def test_the_command_line_and_the_app_import_none_of_them() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORTED], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


@pytest.mark.slow
def test_serve_answers_its_first_request_without_them(settings: Settings) -> None:
    env = {**cli_env(settings), "PERMANENCE_RETENTION_INTERVAL_MINUTES": "0"}
    done = subprocess.run(
        [sys.executable, "-c", FIRST_ANSWER, str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert done.stdout.split() == ["loaded:"]


def test_serve_runs_in_a_tree_of_its_own_and_the_rest_in_the_whole_tree() -> None:
    tree = command_for(["serve", "--port", "8001"])
    assert [c.callback for c in tree.registered_commands] == [serve]
    assert tree.registered_groups == []
    for args in ([], ["--help"], ["db", "upgrade"], ["--install-completion"], ["serves"]):
        assert command_for(args) is app


SERVE_ARGS = (
    ["serve", "--help"],
    ["serve", "--port", "x"],
    ["serve", "--workers", "0"],
    ["serve", "--bogus"],
    ["serve", "extra"],
)


@pytest.mark.parametrize("args", SERVE_ARGS, ids=" ".join)
def test_the_tree_of_serve_answers_as_the_whole_tree(args: list[str]) -> None:
    runner = CliRunner()
    alone = runner.invoke(command_for(args), args, prog_name="permanence")
    whole = runner.invoke(app, args, prog_name="permanence")
    assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output)
    assert alone.exit_code in (0, 2)  # the help, or the usage error: serve never ran


def test_the_serve_command_is_the_same_in_both_trees() -> None:
    def value(v: object, depth: int = 0) -> object:
        if callable(v):
            return "callable"
        if hasattr(v, "__dict__") and depth < 3:  # Typer's parameter infos: copied per tree
            return {k: value(w, depth + 1) for k, w in vars(v).items()}
        return repr(v)

    def described(group: object) -> list[object]:
        command = group.commands["serve"]  # type: ignore[attr-defined]
        return [value(p) for p in command.params] + [command.help, command.short_help]

    assert described(get_command(command_for(["serve"]))) == described(get_command(app))
