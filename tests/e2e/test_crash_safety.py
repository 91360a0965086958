"""Kill the server (SIGKILL) in the middle of a burst of messages: after restart every
message acknowledged with 201 is there, whole (fields open, audit entry present), nothing
half-written is, and the audit chain verifies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from permanence.audit import integrity
from permanence.audit.model import AuditEntry
from permanence.calls import service as calls
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.messages import service as messages
from permanence.messages.model import Message
from permanence.runtime import Runtime
from tests.conftest import cli_env, free_port
from tests.factories import make_account, signed_in_operator
from tests.pii_logs import ServerLogs

VALUES = {
    "last_name": "Martin",
    "phone": "01 99 00 12 34",
    "address": "3 rue des Lilas, 44000 Nantes",
    "urgency": "à planifier",
    "description": "Fuite sous l'évier",
}


def _start(settings: Settings, port: int, output: Path) -> subprocess.Popen[bytes]:
    """The server as production runs it, its output (access log included) kept in
    ``output`` for the end-to-end session's check of personal data in server logs."""
    env = cli_env(settings)
    log = output.open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "permanence.web.app:from_environment",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "info",
        ],
        env={**env, "PERMANENCE_DELIVERY_INTERVAL": "0"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()  # the child has its own copy
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("server did not start")


@pytest.mark.slow
def test_sigkill_mid_burst_loses_no_acknowledged_message(
    rt: Runtime, settings: Settings, server_logs: ServerLogs
) -> None:
    account = make_account(rt, "plomberie-durand")
    operator_id, token, csrf = signed_in_operator(rt)
    ctx = AccessContext(role=Role.OPERATOR, reason="test", actor_id=operator_id)
    with rt.db.session(ctx) as s:
        call_id = calls.open_call(
            s, rt.keyring, dialled="+33240000001", caller_number="0199001234"
        ).call.id
    rt.close()

    port = free_port()
    server = _start(settings, port, server_logs.output_file("crash-safety"))
    url = f"http://127.0.0.1:{port}/api/v1/accounts/{account.id}/calls/{call_id}/messages"
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def send(_: int) -> None:
        if stop.is_set():
            return
        try:
            r = httpx.post(
                url,
                json={"purpose": "intervention", "values": VALUES},
                timeout=10,
                headers={"X-CSRF-Token": csrf},
                cookies={"permanence_session": token},
            )
        except httpx.TransportError:
            return  # the server died under this request: not acknowledged
        if r.status_code == 201:
            with lock:
                acked.append(r.json()["id"])

    def killer() -> None:
        # Killed after 40 acknowledgements, or after 60 s whatever the count (the assertions
        # below then report how many were acknowledged).
        deadline = time.monotonic() + 60
        while len(acked) < 40 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(server.pid, signal.SIGKILL)
        stop.set()

    k = threading.Thread(target=killer)
    k.start()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(send, range(400)))
    k.join(timeout=60)
    server.wait(timeout=10)
    assert server.returncode == -signal.SIGKILL
    assert len(acked) >= 40

    # Restart: the server comes back on the same files; then look at what it kept.
    server = _start(settings, port, server_logs.output_file("crash-safety"))
    server.terminate()
    server.wait(timeout=10)
    fresh = Runtime.from_settings(settings)
    try:
        with fresh.db.session(
            AccessContext(
                role=Role.OPERATOR, reason="test", actor_id=operator_id, account_id=account.id
            )
        ) as s:
            stored = {str(i) for i in s.scalars(select(Message.id))}
            assert set(acked) <= stored, "an acknowledged message was lost"
            created = {
                str(e.body).split('"object":"message:')[1].split('"')[0]
                for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "message.create"))
            }
            assert stored == created, "a message without its audit entry (or the reverse)"
            for mid in stored:  # every stored message is whole: its sealed fields open
                fields = messages.read_message(
                    s, fresh.keyring, messages.get_message(s, uuid.UUID(mid))
                )
                assert fields["description"] == "Fuite sous l'évier"
        with fresh.db.session(AccessContext.system("test"), readonly=True) as s:
            result = integrity.verify(s, fresh.keyring.checkpoint_signing_key().public_key())
        assert result.ok, result.line()
    finally:
        fresh.close()
