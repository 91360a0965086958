"""Several replicas over one PostgreSQL database (docs/adr/0009): what every replica runs in
the background shares the work instead of doing it twice. Each replica is played by its own
Runtime (its own engine and connections), run in its own thread."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, pool, select, text

from permanence import schema
from permanence.accounts.model import Account
from permanence.accounts.service import import_mandate
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.delivery.model import Delivery
from permanence.delivery.worker import Channels, run_due
from permanence.filestore import store_from_settings
from permanence.messages import service as messages
from permanence.recordings.model import Recording
from permanence.retention.service import ADVISORY_LOCK_KEY, sweep_exclusive
from permanence.runtime import Runtime
from permanence.web.app import create_app
from tests.conftest import PG_APP_ROLE, PG_OWNER_URL, PG_URL, SmtpSink, cli_env
from tests.factories import ctx_for, demo_mandate_text, make_account, make_caller
from tests.provider_server import ProviderServer

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="replicas need PostgreSQL (SQLite: one process)"),
]
T = TypeVar("T")
VALUES = {
    "last_name": "Martin",
    "phone": "01 99 00 12 34",
    "address": "3 rue des Lilas, 44000 Nantes",
    "urgency": "à planifier",
    "description": "Fuite sous l'évier",
}


def side_by_side(n: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(i)`` for i in 0..n-1 in n threads released together; re-raise any error."""
    start = threading.Barrier(n)
    results: list[T | None] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait()
            results[i] = work(i)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]


def test_two_delivery_workers_send_each_message_exactly_once(
    rt: Runtime, settings: Settings, smtp: SmtpSink
) -> None:
    taken: list[uuid.UUID] = []
    account = make_account(rt, "plomberie-durand")
    doc = yaml.safe_load(demo_mandate_text("plomberie-durand"))
    doc["recipients"] = [r for r in doc["recipients"] if r["kind"] != "webhook"]
    doc.pop("on_call", None)  # e-mail to the client only: one mail per message
    doc.pop("after_hours", None)  # forwarding out of hours needs the on-call list
    with rt.db.session(ctx_for(account.id, Role.ADMIN)) as s:
        import_mandate(s, doc, account_id=account.id)
    for _ in range(60):
        caller = make_caller(rt, account.id)
        with rt.db.session(ctx_for(account.id)) as s:
            msg = messages.take_message(
                s, rt.keyring, caller_id=caller, purpose="intervention", values=VALUES
            )
            taken.append(msg.id)
    replicas = [Runtime.from_settings(settings) for _ in range(2)]

    def worker(i: int) -> int:
        """One replica's delivery loop, small passes so that the two interleave."""
        sent = 0
        while True:
            counts = run_due(replicas[i], limit=3, channels=Channels.from_settings(settings))
            if not any(counts.values()):
                return sent
            sent += counts["sent"]

    try:
        per_replica = side_by_side(2, worker)
    finally:
        for r in replicas:
            r.close()

    assert sum(per_replica) == len(taken) == 60
    assert all(n > 0 for n in per_replica), f"one replica did all the work: {per_replica}"
    # What the SMTP server received: one mail per message, none twice.
    links = Counter(
        str(mid) for body in smtp.bodies() for mid in taken if f"/portail/messages/{mid}" in body
    )
    assert len(smtp.messages) == 60
    assert set(links) == {str(m) for m in taken} and set(links.values()) == {1}
    with rt.db.session(ctx_for(account.id, Role.ADMIN), readonly=True) as s:
        rows = s.execute(
            select(Delivery.status, Delivery.attempts).where(Delivery.channel == "email")
        ).all()
    assert len(rows) == 60 and {tuple(r) for r in rows} == {("sent", 1)}


def test_a_retention_sweep_is_skipped_while_another_replica_sweeps(
    rt: Runtime, settings: Settings
) -> None:
    store = store_from_settings(settings)
    other = create_engine(settings.effective_database_url, poolclass=pool.NullPool)
    with other.connect() as conn:  # another replica, in the middle of its sweep
        assert conn.execute(
            text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}
        ).scalar()
        assert sweep_exclusive(rt.db, store).skipped
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
    other.dispose()
    assert not sweep_exclusive(rt.db, store).skipped  # its turn now


def test_replicas_migrating_together_migrate_once(settings: Settings) -> None:
    """Each host's permanence-migrate unit runs at the same time on a new release: the
    advisory lock makes them queue; the first migrates, the others find the schema at head."""
    assert PG_OWNER_URL
    owner = create_engine(PG_OWNER_URL, poolclass=pool.NullPool)
    with owner.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    owner.dispose()
    try:
        side_by_side(3, lambda _i: schema.upgrade(PG_OWNER_URL, PG_APP_ROLE))
    finally:
        schema.upgrade(PG_OWNER_URL, PG_APP_ROLE)  # the next tests need the schema either way
    head = schema.current_revision(PG_OWNER_URL)
    assert head is not None
    owner = create_engine(PG_OWNER_URL, poolclass=pool.NullPool)
    with owner.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    owner.dispose()


# Replica B: another process on another host (its own data directory), playing a recording
# back through the product's playback path; prints the audio's SHA-256 and its data directory.
_PLAY_ON_ANOTHER_HOST = """
import hashlib, sys, uuid
from permanence.config import Settings
from permanence.context import Role
from permanence.filestore import store_from_settings
from permanence.recordings import service as recordings
from permanence.runtime import Runtime
from tests.factories import ctx_for

rt = Runtime.from_settings(Settings())
account, recording = uuid.UUID(sys.argv[1]), uuid.UUID(sys.argv[2])
with rt.db.session(ctx_for(account, Role.SUPERVISOR, reason="quality-review")) as s:
    playback = recordings.open_playback(s, rt.keyring, store_from_settings(rt.settings), recording)
print(hashlib.sha256(b"".join(playback.chunks)).hexdigest(), rt.settings.data_dir)
rt.close()
"""


def test_a_recording_stored_by_one_replica_plays_back_on_another_host(
    settings: Settings, provider: ProviderServer, tmp_path: Path
) -> None:
    """Two replicas with two data directories over one PostgreSQL, recordings in the database
    (PERMANENCE_RECORDINGS_BACKEND=postgresql, ADR 0036): replica A takes the provider's
    recording callback (webhook, download, encrypted into the store); replica B, another
    process that shares no directory with A but the erasure-epoch key file, plays it back."""
    from tests.integration.test_telephony import ACCOUNT_SID, _recorded_call, post

    shared = tmp_path / "shared"  # the one file the hosts still share (docs/deployment.md)
    shared.mkdir(mode=0o700)
    settings.recordings_backend = "postgresql"
    settings.erasure_epoch_file = shared / "erasure-epochs.key"
    host_b = tmp_path / "host-b"
    host_b.mkdir(mode=0o700)
    audio = b"RIFF" + os.urandom(700_000) + b"voix de l'appelant"
    replica_a = Runtime.from_settings(settings)
    try:
        make_account(replica_a, "plomberie-durand")
        with TestClient(create_app(replica_a)) as client:
            sid, callback = _recorded_call(client, replica_a)
            provider.recordings["RE" + "7" * 32] = audio
            params = {
                "CallSid": sid,
                "AccountSid": ACCOUNT_SID,
                "RecordingSid": "RE" + "7" * 32,
                "RecordingUrl": provider.recording_url("RE" + "7" * 32),
                "RecordingStatus": "completed",
                "RecordingDuration": "42",
            }
            assert post(client, callback, params).status_code == 204
        assert provider.deleted == ["RE" + "7" * 32]  # ours was committed first
        with replica_a.db.session(AccessContext.system("test")) as s:
            account = s.scalars(select(Account.id)).one()
        with replica_a.db.session(AccessContext.system("test", account)) as s:
            recording = s.scalars(select(Recording.id)).one()
    finally:
        replica_a.close()
    assert not settings.recordings_dir.exists() or not any(settings.recordings_dir.rglob("*"))

    env = cli_env(settings) | {
        "PERMANENCE_DATA_DIR": str(host_b),
        "PERMANENCE_RECORDINGS_BACKEND": "postgresql",
        "PERMANENCE_ERASURE_EPOCH_FILE": str(settings.erasure_epoch_file),
    }
    played = subprocess.run(
        [sys.executable, "-c", _PLAY_ON_ANOTHER_HOST, str(account), str(recording)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert played.returncode == 0, played.stderr
    digest, data_dir = played.stdout.split()
    assert data_dir == str(host_b) != str(settings.data_dir)
    assert digest == hashlib.sha256(audio).hexdigest()
    assert not (host_b / "recordings").exists()  # B read it from the database
