"""Backup and restore throughput (issue 9, part 4), against a plain copy measured in the same run.

Fixture: one account with the plumber's demo mandate, 1,000 callers with their data keys, N
messages (sealed payloads of realistic size, random bytes: sealing is not what is measured),
and R recordings of 256 KiB each (encrypted files in the data directory, with their calls).

Measured on SQLite:
- baseline backup: SQLite's online backup API into a file (what ``sqlite3 .backup`` does) and
  a plain copy of the recordings directory — no encryption, no manifest;
- ``permanence backup``: the same snapshot, plus files, into one encrypted, authenticated
  archive with its manifest;
- baseline restore: the backup API from that copy into a new file, and the recordings copied
  back;
- ``permanence restore``: decrypt and check everything, replace the database, bring the schema
  to head, put the files in place, replay the erasure journal (empty here).

    .venv/bin/python -m bench.backup [--messages 5000] [--recordings 200]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import insert, select

from bench.retention_sweep import demo_mandate_text
from permanence import schema
from permanence.accounts.model import AccountKind
from permanence.accounts.service import create_account, import_mandate
from permanence.backup import service as backups
from permanence.calls.model import Call
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.crypto.model import SubjectKey
from permanence.crypto.stream import encrypt_stream
from permanence.messages.model import Message
from permanence.recordings.model import Recording
from permanence.recordings.storage import LocalStore, storage_key
from permanence.rights.journal import JOURNAL_STEPS
from permanence.runtime import Runtime
from permanence.subjects.model import Caller

AUDIO = 256 * 1024


def build(root: Path, messages: int, recordings: int) -> Settings:
    data = root / "data"
    data.mkdir()
    url = f"sqlite:///{data / 'permanence.db'}"
    schema.upgrade(url)
    settings = Settings(
        data_dir=data, database_url=url, master_key=base64.b64encode(os.urandom(32)).decode()
    )
    rt = Runtime.from_settings(settings)
    with rt.db.session(AccessContext(role=Role.ADMIN, reason="bench")) as s:
        account = create_account(
            s, rt.keyring, slug="plomberie-durand", name="Plomberie", kind=AccountKind.TRADES
        )
        mandate_id = import_mandate(
            s, demo_mandate_text("plomberie-durand"), account_id=account.id
        ).id
    a = account.id
    ctx = AccessContext.system("bench", a)
    store = LocalStore(settings.recordings_dir)
    now = dt.datetime.now(dt.UTC)
    with rt.db.session(ctx) as s:
        callers = [uuid.uuid4() for _ in range(1000)]
        for cid in callers:
            _c, key_row = rt.keyring.new_subject_key(s, a, cid)
            s.execute(insert(SubjectKey).values(**key_row))
        s.execute(insert(Caller), [{"id": c, "account_id": a} for c in callers])
        s.execute(
            insert(Message),
            [
                {
                    "id": uuid.uuid4(),
                    "account_id": a,
                    "caller_id": callers[i % 1000],
                    "mandate_id": mandate_id,
                    "purpose": "intervention",
                    "payload_sealed": os.urandom(420),
                    "created_at": now - dt.timedelta(seconds=i),
                }
                for i in range(messages)
            ],
        )
        for i in range(recordings):
            call_id, rec_id, caller = uuid.uuid4(), uuid.uuid4(), callers[i % 1000]
            s.execute(
                insert(Call).values(
                    id=call_id, account_id=a, caller_id=caller, mandate_id=mandate_id
                )
            )
            cipher = rt.keyring.cipher(s, a, caller)
            ad = cipher.ad("recordings", "audio", rec_id)
            key = storage_key(a, rec_id)
            size = store.put(
                key,
                lambda fh, ad=ad, dek=cipher.dek: encrypt_stream(dek, ad, [os.urandom(AUDIO)], fh),
            )
            s.execute(
                insert(Recording).values(
                    id=rec_id,
                    account_id=a,
                    call_id=call_id,
                    caller_id=caller,
                    mandate_id=mandate_id,
                    provider_sid=f"RE{rec_id.hex}",
                    storage_key=key,
                    size_bytes=size,
                )
            )
        assert s.scalar(select(Message.id).limit(1)) is not None
    rt.close()
    return settings


def baseline_backup(settings: Settings, out: Path) -> float:
    t0 = time.perf_counter()
    src = sqlite3.connect(settings.data_dir / "permanence.db")
    dst = sqlite3.connect(out / "copy.db")
    src.backup(dst)
    dst.close()
    src.close()
    shutil.copytree(settings.recordings_dir, out / "recordings")
    return time.perf_counter() - t0


def baseline_restore(copy: Path, target: Path) -> float:
    t0 = time.perf_counter()
    src = sqlite3.connect(copy / "copy.db")
    dst = sqlite3.connect(target / "permanence.db")
    src.backup(dst)
    dst.close()
    src.close()
    shutil.copytree(copy / "recordings", target / "recordings")
    return time.perf_counter() - t0


def size_of(path: Path) -> int:
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else (path.stat().st_size)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--recordings", type=int, default=200)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="permanence-bench-backup-"))
    try:
        t0 = time.perf_counter()
        settings = build(root, args.messages, args.recordings)
        print(
            f"fixture: {args.messages:,} messages, {args.recordings} recordings of "
            f"{AUDIO // 1024} KiB, built in {time.perf_counter() - t0:.1f} s"
        )
        key = os.urandom(32)
        volume = size_of(settings.data_dir / "permanence.db") + size_of(settings.recordings_dir)

        plain = root / "plain"
        plain.mkdir()
        t_base_b = baseline_backup(settings, plain)
        archive = root / "backup.pmbk"
        t1 = time.perf_counter()
        made = backups.make_backup(settings, archive, key)
        t_perm_b = time.perf_counter() - t1

        target_plain = root / "target-plain"
        target_plain.mkdir()
        t_base_r = baseline_restore(plain, target_plain)
        fresh = root / "target"
        fresh.mkdir()
        target = settings.model_copy(
            update={"data_dir": fresh, "database_url": f"sqlite:///{fresh / 'permanence.db'}"}
        )
        t2 = time.perf_counter()
        # Nobody was erased since the snapshot was taken seconds ago: what the operator says
        # with --no-erasure-since (a restore now refuses to guess, ADR 0008).
        restored = backups.restore(target, archive, key, no_erasure_since=True, steps=JOURNAL_STEPS)
        t_perm_r = time.perf_counter() - t2
        assert restored.rows == made.rows and restored.files == args.recordings

        mb = volume / 1e6
        print(f"data: {mb:.1f} MB (database and recordings); archive {made.size / 1e6:.1f} MB")
        for label, base, ours in (
            ("backup ", t_base_b, t_perm_b),
            ("restore", t_base_r, t_perm_r),
        ):
            print(
                f"{label}: plain copy {base:.2f} s ({mb / base:.0f} MB/s); permanence "
                f"{ours:.2f} s ({mb / ours:.0f} MB/s); ratio permanence/plain {ours / base:.2f}x"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
