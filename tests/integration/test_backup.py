"""Backups and restores through the command line, on the test database (SQLite or PostgreSQL):
consistent while a writer takes messages, encrypted and authenticated, and an erasure made
after the backup replayed on restore (from the target database, the mirror file, or an export)
so that the erased caller stays erased, and an off-boarding made after it so that the client
stays off-boarded."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, pool, select, text
from typer.testing import CliRunner

from permanence import schema
from permanence.audit import integrity
from permanence.audit.model import AuditEntry
from permanence.backup import journal as ejournal
from permanence.backup import service as backups
from permanence.cli import app
from permanence.config import Settings, get_settings
from permanence.context import AccessContext, Role
from permanence.contracts.model import OffboardingCertificate
from permanence.crypto.model import SubjectKey
from permanence.crypto.stream import decrypt_stream
from permanence.db import utcnow
from permanence.errors import Conflict, IntegrityFailure, KeyUnavailable
from permanence.filestore import LocalStore, store_from_settings
from permanence.messages import service as messages
from permanence.messages.model import Message
from permanence.recordings.model import Recording
from permanence.rights import service as rights
from permanence.rights.model import ErasureJournal, Kind, RightsRequest, State
from permanence.runtime import Runtime
from permanence.subjects.model import Caller
from tests.conftest import PG_OWNER_URL, PG_URL, cli_env, run_cli
from tests.factories import (
    CallerRecords,
    caller_with_records,
    ctx_for,
    make_account,
    make_caller,
)

PERMANENCE = [sys.executable, "-m", "permanence"]
BACKUP_KEY = base64.b64encode(hashlib.sha256(b"test backup key").digest()).decode()
ERASED = ("Aurélien", "Vasseur-Quintal", "06 44 21 87 03", "aurelien.vq@exemple.fr")
KEPT = ("Bérénice", "Olmedo-Farge", "06 52 90 13 47", "berenice.of@exemple.fr")


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run(env: dict[str, str], *args: str, ok: bool = True, process: bool = False) -> Ran:
    """The command as a user runs it: in a subprocess, or (faster) through Typer's runner
    with the same environment."""
    if process:
        proc = run_cli(env, *args)
        ran = Ran(proc.returncode, proc.stdout, proc.stderr)
    else:
        get_settings.cache_clear()
        unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("PERMANENCE_")}
        result = CliRunner().invoke(app, list(args), env={**unset, **env})
        get_settings.cache_clear()
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        ran = Ran(result.exit_code, result.stdout, result.stderr)
    if ok:
        assert ran.returncode == 0, ran.stderr
    else:
        assert ran.returncode != 0, ran.stdout
    assert "Traceback" not in ran.stderr
    for word in (*ERASED, *KEPT):  # nothing personal in what the commands print
        assert word not in ran.stdout + ran.stderr
    return ran


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    e = cli_env(settings)
    e["PERMANENCE_BACKUP_KEY"] = BACKUP_KEY
    return e


def subject(rt: Runtime, account: uuid.UUID, who: tuple[str, str, str, str]) -> CallerRecords:
    first, last, phone, email = who
    return caller_with_records(rt, account, first=first, last=last, phone=phone, email=email)


def backed_up(
    rt: Runtime, env: dict[str, str], tmp_path: Path
) -> tuple[uuid.UUID, CallerRecords, Path]:
    """The plumber's account with one caller (KEPT), backed up."""
    account = make_account(rt, "plomberie-durand").id
    kept = subject(rt, account, KEPT)
    archive = tmp_path / "b.pmbk"
    run(env, "backup", str(archive))
    return account, kept, archive


def request_erasure(rt: Runtime, account: uuid.UUID, who: tuple[str, str, str, str]) -> uuid.UUID:
    """The controller takes an erasure request in (identity vouched for): it is verified."""
    with rt.db.session(ctx_for(account, Role.CLIENT)) as s:
        req = rights.submit(
            s,
            rt.keyring,
            rights.Intake(
                kind=Kind.ERASURE,
                requester=rights.Requester(phone=who[2]),
                verified_by_controller=True,
            ),
        )
        return req.id


def execute(rt: Runtime, account: uuid.UUID, request_id: uuid.UUID) -> None:
    """Through the rights-request path: the controller executes the request."""
    ctx = ctx_for(account, Role.CLIENT)
    done = rights.run_execute(rt, rights.Outbox.from_settings(rt.settings), ctx, request_id)
    assert done.outcome["messages"] == 1 and done.outcome["recordings"] == 1


def check_consistent(rt: Runtime) -> int:
    """The audit chain verifies, every message and recording opens, nothing is orphaned.
    Returns the number of messages."""
    store = store_from_settings(rt.settings)
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        assert integrity.verify(s, rt.keyring.checkpoint_signing_key().public_key()).ok
    accounts = _accounts(rt)
    total = 0
    for account in accounts:
        with rt.db.session(AccessContext.system("test", account), readonly=True) as s:
            for msg in s.scalars(select(Message)):
                assert s.get(Caller, msg.caller_id) is not None
                cipher = rt.keyring.cipher(s, account, msg.caller_id)
                assert cipher.open_json("messages", "payload", msg.id, msg.payload_sealed)
                total += 1
            for rec in s.scalars(select(Recording)):
                cipher = rt.keyring.cipher(s, account, rec.caller_id)
                ad = cipher.ad("recordings", "audio", rec.id)
                with store.open(rec.storage_key) as fh:
                    assert b"".join(decrypt_stream(cipher.dek, ad, fh)).startswith(b"RIFF-")
            orphans = s.scalar(
                select(func.count())
                .select_from(Caller)
                .where(~Caller.id.in_(select(SubjectKey.subject_id)))
            )
            assert orphans == 0
    return total


def _accounts(rt: Runtime) -> list[uuid.UUID]:
    from permanence.accounts.model import Account

    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        return list(s.scalars(select(Account.id)))


def lose_everything(settings: Settings) -> None:
    """The database and the data files are gone (the mirror file is kept unless told)."""
    if PG_URL:
        assert PG_OWNER_URL
        engine = create_engine(PG_OWNER_URL, poolclass=pool.NullPool)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{settings.data_dir / 'permanence.db'}{suffix}").unlink(missing_ok=True)
    for p in sorted(settings.recordings_dir.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()


def count(rt: Runtime, account: uuid.UUID, model: type) -> int:
    with rt.db.session(AccessContext.system("test", account), readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


# -- (1) consistent while writers are active ------------------------------------------------


@pytest.mark.gdpr("Art. 32")
def test_backup_while_a_writer_takes_messages_restores_a_consistent_database(
    rt: Runtime, settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    account = make_account(rt, "plomberie-durand").id
    people = [
        subject(rt, account, (f"Prénom{i}", f"Nom{i}", f"06 44 21 87 {i:02d}", f"p{i}@exemple.fr"))
        for i in range(6)
    ]
    stop = threading.Event()
    taken: list[float] = []
    errors: list[BaseException] = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            who = people[i % len(people)]
            try:
                with rt.db.session(ctx_for(account)) as s:
                    messages.take_message(
                        s,
                        rt.keyring,
                        caller_id=who.caller_id,
                        purpose="intervention",
                        values={
                            "last_name": f"Nom{i % len(people)}",
                            "phone": "06 44 21 87 00",
                            "address": "1 quai de la Fosse, 44000 Nantes",
                            "urgency": "à planifier",
                            "description": f"Demande numéro {i}",
                        },
                    )
                taken.append(time.monotonic())
            except BaseException as exc:  # the test fails below if the writer did
                errors.append(exc)
                return
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(taken) < 5 and not errors:
            assert time.monotonic() < deadline, "the writer took fewer than 5 messages in 30 s"
            time.sleep(0.01)
        started = time.monotonic()
        out = run(env, "backup", str(tmp_path / "b.pmbk"), process=True).stdout
        ended = time.monotonic()
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert any(started <= t <= ended for t in taken), "the writer was not active during backup"
    assert "backup written to" in out and "6 files (0 missing)" in out
    manifest = backups.check_archive(settings, tmp_path / "b.pmbk", base64.b64decode(BACKUP_KEY))
    in_backup = manifest["tables"]["messages"]["rows"]
    assert len(people) < in_backup < len(people) + len(taken)

    # Restore into a fresh place: an empty data directory and database (PostgreSQL: the same
    # database, once lost).
    rt.close()
    if PG_URL:
        lose_everything(settings)
        # The epoch keys are lost too: the backup carries its own (under the backup key).
        settings.effective_erasure_epoch_file.unlink()
        target = settings
        target_env = env
    else:
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        target = settings.model_copy(
            update={"data_dir": fresh, "database_url": f"sqlite:///{fresh / 'permanence.db'}"}
        )
        target_env = {
            **env,
            "PERMANENCE_DATA_DIR": str(fresh),
            "PERMANENCE_DATABASE_URL": target.effective_database_url,
        }
    # The fresh place has no journal: refused, unless told no one was erased since.
    refused = run(target_env, "restore", str(tmp_path / "b.pmbk"), ok=False)
    assert "no erasure journal covers the time since the backup" in refused.stderr
    assert "does not exist, no --journal given" in refused.stderr
    out = run(target_env, "restore", str(tmp_path / "b.pmbk"), "--no-erasure-since").stdout
    assert "0 replayed" in out and "--no-erasure-since, in the audit log" in out
    assert "audit chain intact" in run(target_env, "audit", "verify").stdout
    restored = Runtime.from_settings(target)
    try:
        assert check_consistent(restored) == in_backup
        assert count(restored, account, Recording) == len(people)
    finally:
        restored.close()


# -- (2) an erasure made after the backup stays made ----------------------------------------


@pytest.mark.gdpr("Art. 17")
@pytest.mark.parametrize("source", ["target database", "mirror file", "journal export"])
def test_erasure_after_the_backup_is_replayed_on_restore(
    rt: Runtime, settings: Settings, env: dict[str, str], tmp_path: Path, source: str
) -> None:
    account = make_account(rt, "plomberie-durand").id
    erased, kept = subject(rt, account, ERASED), subject(rt, account, KEPT)
    # The request is in the backup, still open; its execution is not.
    request_id = request_erasure(rt, account, ERASED)
    archive = tmp_path / "before.pmbk"
    run(env, "backup", str(archive))
    execute(rt, account, request_id)
    with rt.db.session(AccessContext.system("test", account), readonly=True) as s:
        entry = s.scalars(select(ErasureJournal)).one()
    mirror = settings.effective_erasure_journal_file
    assert str(entry.id) in mirror.read_text()
    assert ERASED[1] not in mirror.read_text()
    export = tmp_path / "journal.jsonl"
    run(env, "rights", "journal-export", "--out", str(export))
    rt.close()

    if source == "target database":
        refused = run(env, "restore", str(archive), ok=False)
        assert "not empty" in refused.stderr and "--force" in refused.stderr
        out = run(env, "restore", str(archive), "--force").stdout
        assert "1 from the target database" in out
    elif source == "mirror file":
        lose_everything(settings)
        out = run(env, "restore", str(archive)).stdout
        assert "0 from the target database, 1 from the mirror file" in out
    else:
        lose_everything(settings)
        mirror.unlink()
        out = run(env, "restore", str(archive), "--journal", str(export)).stdout
        assert f"1 from {export}" in out
    assert "1 replayed" in out
    assert "audit chain intact" in run(env, "audit", "verify").stdout

    again = Runtime.from_settings(settings)
    try:
        with again.db.session(AccessContext.system("test", account), readonly=True) as s:
            assert s.get(Caller, erased.caller_id) is None
            assert s.get(SubjectKey, erased.caller_id) is None
            assert s.get(Message, erased.message_id) is None
            with pytest.raises(KeyUnavailable):
                again.keyring.cipher(s, account, erased.caller_id)
            assert [e.id for e in s.scalars(select(ErasureJournal))] == [entry.id]
            req = s.get(RightsRequest, request_id)
            assert req is not None and req.state == State.COMPLETED.value
            assert req.requester_sealed is None
            replays = s.scalars(
                select(AuditEntry).where(AuditEntry.action == "rights.erase.replay")
            ).all()
            assert [r.subject_id for r in replays] == [erased.caller_id]
        store = LocalStore(settings.recordings_dir)
        assert not store.exists(erased.recording_key)
        assert store.exists(kept.recording_key)
        assert check_consistent(again) == 1
        # The erasure is back in the mirror, once, whatever the journal came from.
        assert len(ejournal.read_file(mirror, mirror_key(again))) == 1

        # Replaying again changes nothing and writes nothing to the audit log.
        with again.db.session(AccessContext.system("test"), readonly=True) as s:
            head = s.scalar(select(func.max(AuditEntry.seq)))
        with again.db.session(AccessContext.system("test", account)) as s:
            done, applied = rights.replay_erasure(s, again.keyring, ejournal.JournalEntry.of(entry))
        assert not applied and not done.changed and done.files == []
        with again.db.session(AccessContext.system("test"), readonly=True) as s:
            assert s.scalar(select(func.max(AuditEntry.seq))) == head
    finally:
        again.close()


THIRD = ("Aldebert", "Pommeraie", "06 47 12 90 33", "aldebert.pommeraie@exemple.fr")


@pytest.mark.gdpr("Art. 17")
def test_restore_names_what_the_journal_is_missing(
    rt: Runtime, settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    """A journal with a gap, or one that does not reach back to the backup, does not cover the
    time since: the restore (the real command) says which and touches nothing; the whole
    journal restores, replays, and the backup's epoch keys are destroyed by the next rotation."""
    account = make_account(rt, "plomberie-durand").id
    before, after1, after2 = (subject(rt, account, who) for who in (KEPT, ERASED, THIRD))
    execute(rt, account, request_erasure(rt, account, KEPT))
    archive = tmp_path / "b.pmbk"
    run(env, "backup", str(archive))
    backup_epochs = rt.keyring.epochs.epochs()  # type: ignore[union-attr]
    for who in (ERASED, THIRD):
        execute(rt, account, request_erasure(rt, account, who))
    rt.close()
    mirror = settings.effective_erasure_journal_file
    lines = mirror.read_text().splitlines(keepends=True)
    assert [json.loads(x)["seq"] for x in lines] == [1, 2, 3]
    gapped, headless = tmp_path / "gapped.jsonl", tmp_path / "headless.jsonl"
    gapped.write_text(lines[0] + lines[2])
    headless.write_text(lines[1] + lines[2])
    whole = mirror.rename(tmp_path / "whole.jsonl")
    lose_everything(settings)

    refused = run(
        env, "restore", str(archive), "--journal", str(gapped), "--journal", str(headless),
        ok=False, process=True,
    ).stderr  # fmt: skip
    assert "no erasure journal covers the time since the backup" in refused
    assert f"{gapped}: entry 2 is missing" in refused
    assert f"{headless}: it does not hold the backup's newest erasure" in refused
    assert "--no-erasure-since" in refused and "Nothing was changed" in refused
    if not PG_URL:
        db = settings.data_dir / "permanence.db"
        assert not db.exists() or db.stat().st_size == 0

    out = run(env, "restore", str(archive), "--journal", str(whole), process=True).stdout
    assert "2 replayed" in out and "--no-erasure-since" not in out
    again = Runtime.from_settings(settings)
    try:
        for gone in (before, after1, after2):
            with again.db.session(AccessContext.system("test", account), readonly=True) as s:
                assert s.get(Caller, gone.caller_id) is None
        # The restored rows were wrapped under the backup's epochs, whose keys the restore put
        # back and made a rotation due for; it re-wraps and destroys them.
        assert again.keyring.epoch_rotation_due(again.db, 0, 0) == "erasure"
        done = again.keyring.rotate_epoch(again.db, grace=0)
        assert not (again.keyring.epochs.epochs() & backup_epochs)  # type: ignore[union-attr]
        assert done["epoch"] > max(backup_epochs)
    finally:
        again.close()


def mirror_key(rt: Runtime) -> bytes:
    return rt.keyring.derived_secret(ejournal.MAC_PURPOSE)


# -- (3) encrypted and authenticated ---------------------------------------------------------


def test_tampered_truncated_or_wrong_key_archive_is_refused_and_nothing_is_touched(
    rt: Runtime, settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    backed_up(rt, env, tmp_path)
    archive = tmp_path / "b.pmbk"
    data = archive.read_bytes()
    for word in KEPT:  # encrypted: nothing of the caller in clear, not even in file names
        assert word.encode() not in data
    assert b"intervention" not in data and b"messages" not in data
    # The target is empty, so only the archive's faults can stop the restore.
    lose_everything(settings)
    rt.close()

    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    (tmp_path / "flipped.pmbk").write_bytes(bytes(flipped))
    (tmp_path / "short.pmbk").write_bytes(data[: len(data) - 100])
    for name in ("flipped.pmbk", "short.pmbk"):
        refused = run(env, "restore", str(tmp_path / name), ok=False)
        assert "failed authentication" in refused.stderr, refused.stderr
    wrong = {**env, "PERMANENCE_BACKUP_KEY": base64.b64encode(os.urandom(32)).decode()}
    refused = run(wrong, "restore", str(archive), ok=False)
    assert "wrong backup key" in refused.stderr
    no_key = {k: v for k, v in env.items() if k != "PERMANENCE_BACKUP_KEY"}
    assert "no backup key" in run(no_key, "restore", str(archive), ok=False).stderr
    # Nothing was restored, nothing left behind in the data directory.
    assert not list(settings.recordings_dir.rglob("*.pmr"))
    assert not [p for p in settings.data_dir.iterdir() if p.name.startswith(".restore-")]
    if PG_URL:
        assert PG_OWNER_URL
        engine = create_engine(PG_OWNER_URL, poolclass=pool.NullPool)
        with engine.connect() as conn:
            assert (
                conn.execute(
                    text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                ).scalar()
                == 0
            )
        engine.dispose()
    else:
        db = settings.data_dir / "permanence.db"
        assert not db.exists() or db.stat().st_size == 0
    # The intact archive, with the right key, still restores.
    restored = run(env, "restore", str(archive), "--no-erasure-since").stdout
    assert "restored the backup" in restored


def test_a_forged_journal_line_stops_the_restore(
    rt: Runtime, settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    account, kept, archive = backed_up(rt, env, tmp_path)
    forged = ejournal.JournalEntry(uuid.uuid4(), account, kept.caller_id, None, utcnow())
    settings.effective_erasure_journal_file.write_text(
        ejournal.line_of(forged, b"k" * 32, 1)  # not the key derived from the master key
    )
    rt.close()
    refused = run(env, "restore", str(archive), "--force", ok=False)
    assert "line 1: the entry failed authentication" in refused.stderr
    again = Runtime.from_settings(settings)
    try:
        assert count(again, account, Caller) == 1
        with pytest.raises(IntegrityFailure):
            ejournal.read_file(settings.effective_erasure_journal_file, mirror_key(again))
    finally:
        again.close()


# -- (4) a target that holds data is replaced only on request --------------------------------


def test_restore_refuses_a_target_with_data_without_force(
    rt: Runtime, settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    account, _kept, archive = backed_up(rt, env, tmp_path)
    later = subject(rt, account, ERASED)  # made after the backup
    refused = run(env, "restore", str(archive), ok=False)
    assert "not empty" in refused.stderr
    assert count(rt, account, Caller) == 2  # untouched
    assert LocalStore(settings.recordings_dir).exists(later.recording_key)
    rt.close()
    out = run(env, "restore", str(archive), "--force", "--no-erasure-since").stdout
    assert "restored the backup" in out
    again = Runtime.from_settings(settings)
    try:
        assert count(again, account, Caller) == 1
        # The file of the recording made after the backup went with its row.
        assert not LocalStore(settings.recordings_dir).exists(later.recording_key)
        check_consistent(again)
    finally:
        again.close()


def test_restore_refuses_to_delete_files_the_service_did_not_write(
    rt: Runtime, settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    """Someone's own files in the stores (a note, a copied document) are named and kept:
    the restore refuses before touching anything; a write the service left cut short
    (``.part``) is its own and goes."""
    account, _kept, archive = backed_up(rt, env, tmp_path)
    later = subject(rt, account, ERASED)
    note = settings.recordings_dir / "notes-de-l-admin.txt"
    document = settings.data_dir / "training" / "scans" / "attestation.pdf"
    cut_short = settings.recordings_dir / f"{account}" / f"{uuid.uuid4()}.part"
    for f in (note, document, cut_short):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"not the service's")
    rt.close()
    refused = run(env, "restore", str(archive), "--force", ok=False)
    assert "2 file(s) this service did not write" in refused.stderr
    assert str(note) in refused.stderr and str(document) in refused.stderr
    assert str(cut_short) not in refused.stderr
    assert "nothing was changed" in refused.stderr
    assert note.exists() and document.exists() and cut_short.exists()
    again = Runtime.from_settings(settings)
    try:
        assert count(again, account, Caller) == 2  # the database untouched too
    finally:
        again.close()
    aside = tmp_path / "aside"
    aside.mkdir()
    note.rename(aside / note.name)
    document.rename(aside / document.name)
    out = run(env, "restore", str(archive), "--force", "--no-erasure-since").stdout
    assert "restored the backup" in out
    assert not cut_short.exists()
    assert not LocalStore(settings.recordings_dir).exists(later.recording_key)


def test_backup_refuses_to_overwrite_and_key_file_is_private(
    settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    key_file = tmp_path / "backup.key"
    out = run(env, "keys", "backup-key", str(key_file)).stdout
    assert "key id" in out and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert "refusing to overwrite" in run(env, "keys", "backup-key", str(key_file), ok=False).stderr
    file_env = {k: v for k, v in env.items() if k != "PERMANENCE_BACKUP_KEY"}
    file_env["PERMANENCE_BACKUP_KEY_FILE"] = str(key_file)
    archive = tmp_path / "b.pmbk"
    run(file_env, "backup", str(archive))
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    assert "refusing to overwrite" in run(file_env, "backup", str(archive), ok=False).stderr
    assert "archive intact" in run(file_env, "restore", str(archive), "--check").stdout


def test_journal_replay_after_a_restore_made_without_the_journal(
    rt: Runtime, settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    """Without the journal the restore is refused; told (wrongly) that no one was erased since,
    an older backup brings the erased caller back (what this is all about); 'rights
    journal-replay' then erases them again, and a second run does nothing."""
    account = make_account(rt, "plomberie-durand").id
    erased = subject(rt, account, ERASED)
    subject(rt, account, KEPT)
    request_id = request_erasure(rt, account, ERASED)
    archive = tmp_path / "b.pmbk"
    run(env, "backup", str(archive))
    execute(rt, account, request_id)
    rt.close()
    mirror = settings.effective_erasure_journal_file
    kept_aside = mirror.rename(tmp_path / "journal-kept-aside.jsonl")
    lose_everything(settings)
    refused = run(env, "restore", str(archive), ok=False).stderr
    assert "no erasure journal covers the time since the backup" in refused
    out = run(env, "restore", str(archive), "--no-erasure-since").stdout
    assert "0 entries" in out
    back = Runtime.from_settings(settings)
    try:  # the statement is in the audit log
        with back.db.session(AccessContext.system("test"), readonly=True) as s:
            restore_entry = s.scalars(
                select(AuditEntry).where(AuditEntry.action == "backup.restore")
            ).one()
        assert json.loads(restore_entry.body)["details"]["journal_cover"] == "declared"
    finally:
        back.close()
    back = Runtime.from_settings(settings)
    try:
        assert count(back, account, Caller) == 2  # the erased caller is back
        assert LocalStore(settings.recordings_dir).exists(erased.recording_key)
    finally:
        back.close()

    kept_aside.rename(mirror)
    out = run(env, "rights", "journal-replay").stdout
    assert "1 entries (0 from the database, 1 from the mirror file), 1 replayed" in out
    out = run(env, "rights", "journal-replay").stdout
    assert "1 from the database, 1 from the mirror file), 0 replayed" in out
    assert "audit chain intact" in run(env, "audit", "verify").stdout
    again = Runtime.from_settings(settings)
    try:
        assert count(again, account, Caller) == 1
        assert not LocalStore(settings.recordings_dir).exists(erased.recording_key)
        with again.db.session(AccessContext.system("test", account), readonly=True) as s:
            assert s.get(SubjectKey, erased.caller_id) is None
        assert check_consistent(again) == 1
    finally:
        again.close()


def test_an_older_backup_is_restored_at_its_revision_then_upgraded(
    rt: Runtime, settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    rt.close()
    lose_everything(settings)
    url = settings.effective_migration_url
    cfg = schema.alembic_config(url)
    head = ScriptDirectory.from_config(cfg).get_current_head()
    command.upgrade(cfg, "0030")  # an older version of the schema, with data
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO training_courses (code, title_fr, title_en, validity_days, "
                "required, active, created_at) VALUES ('test-old-course', 'Ancienne', 'Old', "
                "365, false, true, CURRENT_TIMESTAMP)"
            )
        )
        courses = conn.execute(text("SELECT count(*) FROM training_courses")).scalar()
    engine.dispose()
    archive = tmp_path / "old.pmbk"
    assert "at revision 0030" in run(env, "backup", str(archive)).stdout
    schema.upgrade(url, settings.database_app_role)  # the target is newer, and holds data

    out = run(env, "restore", str(archive), "--force", "--no-erasure-since").stdout
    assert f"revision 0030, upgraded to {head}" in out
    assert schema.current_revision(url) == head
    again = Runtime.from_settings(settings)
    try:
        with again.db.session(AccessContext.system("test"), readonly=True) as s:
            assert s.execute(text("SELECT count(*) FROM training_courses")).scalar() == courses
            assert integrity.verify(s, again.keyring.checkpoint_signing_key().public_key()).ok
    finally:
        again.close()


# -- (6) an off-boarding made after the backup is replayed too -------------------------------


def _offboarded_state(rt: Runtime, account: uuid.UUID) -> dict[str, object]:
    """What an off-boarding leaves of an account: its status, the rows it still owns, its
    keys, its journal."""
    from permanence.accounts.model import Account
    from permanence.contracts import offboarding
    from permanence.crypto.model import AccountKey

    with rt.db.session(AccessContext.system("test", account), readonly=True) as s:
        acc = s.get(Account, account)
        assert acc is not None
        return {
            "status": acc.status,
            "remaining": offboarding.remaining_rows(s, account),
            "account_keys": s.scalar(
                select(func.count()).select_from(AccountKey).where(AccountKey.account_id == account)
            ),
            "subject_keys": s.scalar(
                select(func.count()).select_from(SubjectKey).where(SubjectKey.account_id == account)
            ),
            "journal": [
                (e.id, e.kind, e.subject_id)
                for e in s.scalars(
                    select(ErasureJournal).where(ErasureJournal.account_id == account)
                )
            ],
        }


@pytest.mark.parametrize("source", ["target database", "mirror file"])
def test_offboarding_after_the_backup_is_replayed_on_restore(
    rt: Runtime, settings: Settings, env: dict[str, str], tmp_path: Path, source: str
) -> None:
    from permanence.accounts.model import AccountStatus
    from permanence.contracts import offboarding

    gone = make_account(rt, "plomberie-durand").id
    records = subject(rt, gone, ERASED)
    other = make_account(rt, "cabinet-lefevre").id
    first, last, phone, email = KEPT
    kept = make_caller(rt, other, first=first, last=last, phone=phone, email=email)
    archive = tmp_path / "before.pmbk"
    run(env, "backup", str(archive))
    store = LocalStore(settings.recordings_dir)
    assert store.exists(records.recording_key)
    run(env, "offboard", "--account", "plomberie-durand", "--export-to", str(tmp_path), "--yes")
    assert not store.exists(records.recording_key)  # the file goes with its row
    after = _offboarded_state(rt, gone)
    assert after["status"] == AccountStatus.OFFBOARDED
    assert set(after["remaining"]) <= set(offboarding.RETAINED)  # type: ignore[arg-type]
    assert after["account_keys"] == after["subject_keys"] == 0
    [(entry_id, kind, subject_id)] = after["journal"]  # type: ignore[misc]
    assert (kind, subject_id) == ("account", None)
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        original = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "account.offboard")
        ).one()
    mirror = settings.effective_erasure_journal_file
    [line] = ejournal.read_file(mirror, mirror_key(rt))
    assert (line.id, line.kind, line.account_id) == (entry_id, "account", gone)
    rt.close()

    if source == "target database":
        out = run(env, "restore", str(archive), "--force").stdout
        assert "1 from the target database" in out
    else:
        lose_everything(settings)
        out = run(env, "restore", str(archive)).stdout
        assert "0 from the target database, 1 from the mirror file" in out
    assert "1 replayed" in out
    assert "audit chain intact" in run(env, "audit", "verify").stdout
    # The restore put the recording back with its row; the replayed off-boarding deleted both.
    assert not store.exists(records.recording_key)

    again = Runtime.from_settings(settings)
    try:
        # Off-boarded again: what the original off-boarding left, and nothing more.
        assert _offboarded_state(again, gone) == after
        with again.db.session(AccessContext.system("test", gone), readonly=True) as s:
            assert s.get(Caller, records.caller_id) is None
            assert s.get(Message, records.message_id) is None
            with pytest.raises(KeyUnavailable):
                again.keyring.cipher(s, gone, records.caller_id)
            replays = s.scalars(
                select(AuditEntry).where(AuditEntry.action == "account.offboard.replay")
            ).all()
            # Audited as a replay, of the same deletions as the original.
            [replay] = [json.loads(r.body) for r in replays]
            assert replay["object"] == f"account:{gone}"
            assert replay["reason"] == "backup:restore"
            assert replay["details"] == json.loads(original.body)["details"]
            assert replay["details"]["journal_entry"] == str(entry_id)
            cert = s.scalars(select(OffboardingCertificate)).one()
            doc = json.loads(cert.document)
            assert doc["journal_entry"] == str(entry_id) and doc["replay_of"] is not None
            assert offboarding.verify_certificate(doc, cert.signature, cert.public_key)
        # The other client is intact: its caller and key are there and open.
        with again.db.session(AccessContext.system("test", other), readonly=True) as s:
            caller = s.get(Caller, kept)
            assert caller is not None and s.get(SubjectKey, kept) is not None
            again.keyring.cipher(s, other, kept)
        assert count(again, other, Caller) == 1
        check_consistent(again)
        # The entry is in the mirror once, whatever the journal came from.
        assert [e.id for e in ejournal.read_file(mirror, mirror_key(again))] == [entry_id]

        # Replaying again changes nothing and writes nothing to the audit log.
        with again.db.session(AccessContext.system("test"), readonly=True) as s:
            head = s.scalar(select(func.max(AuditEntry.seq)))
        with again.db.session(AccessContext.system("backup:restore", gone)) as s:
            assert offboarding.replay_offboarding(s, again.keyring, line) == (False, ())
            with pytest.raises(Conflict, match="not the erasure of a subject"):
                rights.replay_erasure(s, again.keyring, line)
        with again.db.session(AccessContext.system("test"), readonly=True) as s:
            assert s.scalar(select(func.max(AuditEntry.seq))) == head
    finally:
        again.close()
    out = run(env, "rights", "journal-replay").stdout
    assert "0 replayed" in out


def _format_1_line(entry: ejournal.JournalEntry, key: bytes) -> str:
    """A line as Permanence wrote it before the journal had kinds (format 1, no ``kind``)."""
    fields = {
        "v": 1,
        "id": str(entry.id),
        "account_id": str(entry.account_id),
        "subject_id": str(entry.subject_id),
        "request_id": None,
        "erased_at": entry.erased_at.isoformat(),
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    mac = hmac.new(key, canonical, hashlib.sha256).hexdigest()
    return json.dumps({**fields, "mac": mac}, sort_keys=True, separators=(",", ":")) + "\n"


def test_a_format_1_journal_line_still_replays_as_a_subject_erasure(
    rt: Runtime, settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    account = make_account(rt, "plomberie-durand").id
    erased = subject(rt, account, ERASED)
    archive = tmp_path / "b.pmbk"
    run(env, "backup", str(archive))
    old = ejournal.JournalEntry(uuid.uuid4(), account, erased.caller_id, None, utcnow())
    line = _format_1_line(old, mirror_key(rt))
    assert '"kind"' not in line
    [parsed] = ejournal.parse_lines([line], mirror_key(rt), "old")
    assert parsed == old and parsed.kind == "subject" and not parsed.is_account
    settings.effective_erasure_journal_file.write_text(line)
    rt.close()
    lose_everything(settings)
    # A mirror of format 1 lines carries no sequence: it cannot show it covers the time since.
    refused = run(env, "restore", str(archive), ok=False).stderr
    assert "carry no sequence numbers" in refused
    out = run(env, "restore", str(archive), "--no-erasure-since").stdout
    assert "1 from the mirror file" in out and "1 replayed" in out
    again = Runtime.from_settings(settings)
    try:
        assert count(again, account, Caller) == 0
        with again.db.session(AccessContext.system("test", account), readonly=True) as s:
            row = s.get(ErasureJournal, old.id)
            assert row is not None and row.kind == "subject"
            assert row.subject_id == erased.caller_id
        check_consistent(again)
    finally:
        again.close()


@pytest.mark.parametrize("alteration", ["kind changed", "kind removed (as format 1)"])
def test_a_journal_line_whose_kind_was_altered_is_refused(
    rt: Runtime, settings: Settings, env: dict[str, str], tmp_path: Path, alteration: str
) -> None:
    """The HMAC covers the kind: a subject erasure cannot be turned into the off-boarding of
    its account, nor an off-boarding passed off as an old line."""
    account, kept, archive = backed_up(rt, env, tmp_path)
    key = mirror_key(rt)
    if alteration == "kind changed":
        entry = ejournal.JournalEntry(uuid.uuid4(), account, kept.caller_id, None, utcnow())
        data = json.loads(ejournal.line_of(entry, key, 1))
        assert data["kind"] == "subject" and data["v"] == 3 and data["seq"] == 1
        data.update(kind="account", subject_id=None)
    else:
        entry = ejournal.JournalEntry.offboarding(account, utcnow())
        data = json.loads(ejournal.line_of(entry, key, 1))
        assert data["kind"] == "account"
        del data["kind"], data["seq"]
        data.update(v=1, subject_id=str(kept.caller_id))
    settings.effective_erasure_journal_file.write_text(json.dumps(data) + "\n")
    rt.close()
    refused = run(env, "restore", str(archive), "--force", ok=False)
    assert "line 1: the entry failed authentication" in refused.stderr
    again = Runtime.from_settings(settings)
    try:
        assert count(again, account, Caller) == 1  # nothing touched
        assert _offboarded_state(again, account)["status"] == "active"
        with pytest.raises(IntegrityFailure):
            ejournal.read_file(settings.effective_erasure_journal_file, mirror_key(again))
    finally:
        again.close()


def test_migration_0070_keeps_older_journal_rows_as_subject_erasures(
    rt: Runtime, settings: Settings
) -> None:
    """Rows written before the journal had kinds are subject erasures, read as such before
    the upgrade (a restore reads the target's journal at its own revision) and after; the
    kind and the subject go together; a downgrade drops the off-boarding entries only."""
    import datetime as dt

    import sqlalchemy as sa
    from alembic import command
    from sqlalchemy.exc import IntegrityError

    from permanence.accounts.model import Account, AccountKind, AccountStatus
    from permanence.db import UTCDateTime

    rt.close()
    lose_everything(settings)
    url = settings.effective_migration_url
    cfg = schema.alembic_config(url)
    command.upgrade(cfg, "0050")
    account, subject_id = uuid.uuid4(), uuid.uuid4()
    at = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)
    old = ejournal.JournalEntry(uuid.uuid4(), account, subject_id, None, at)
    table_0050 = sa.table(
        "erasure_journal",
        sa.column("id", sa.Uuid()),
        sa.column("account_id", sa.Uuid()),
        sa.column("subject_id", sa.Uuid()),
        sa.column("erased_at", UTCDateTime()),
    )

    def act(conn: sa.Connection) -> None:
        if PG_URL:
            conn.execute(text("SELECT set_config('app.account_id', :a, true)"), {"a": str(account)})

    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(Account.__table__).values(
                    id=account,
                    slug="ancien-client",
                    name="Ancien client",
                    kind=AccountKind.OTHER,
                    status=AccountStatus.ACTIVE,
                    created_at=at,
                )
            )
            act(conn)
            conn.execute(
                sa.insert(table_0050).values(
                    id=old.id, account_id=account, subject_id=subject_id, erased_at=at
                )
            )
        with engine.begin() as conn:
            assert ejournal.read_database(conn) == [old]  # at 0050: no kind column
        schema.upgrade(url, settings.database_app_role)
        offboarded = ejournal.JournalEntry.offboarding(account, at + dt.timedelta(days=1))
        with engine.begin() as conn:
            assert ejournal.read_database(conn) == [old]
            act(conn)
            kind = conn.execute(text("SELECT kind FROM erasure_journal")).scalar_one()
            assert kind == "subject"
            journal_table = ErasureJournal.__table__
            for bad in (
                {"kind": "account", "subject_id": subject_id},
                {"kind": "subject", "subject_id": None},
                {"kind": "everything", "subject_id": None},
            ):
                with pytest.raises(IntegrityError), conn.begin_nested():
                    conn.execute(
                        sa.insert(journal_table).values(
                            id=uuid.uuid4(), account_id=account, erased_at=at, **bad
                        )
                    )
            conn.execute(
                sa.insert(journal_table).values(
                    id=offboarded.id,
                    account_id=account,
                    kind="account",
                    subject_id=None,
                    erased_at=offboarded.erased_at,
                )
            )
        with engine.begin() as conn:
            assert ejournal.merge(ejournal.read_database(conn)) == [old, offboarded]
        command.downgrade(cfg, "0050")
        with engine.begin() as conn:
            assert ejournal.read_database(conn) == [old]
        schema.upgrade(url, settings.database_app_role)
    finally:
        engine.dispose()


# -- files are private ---------------------------------------------------------------------


@pytest.mark.skipif(bool(PG_URL), reason="the SQLite file's mode (PostgreSQL keeps its own)")
def test_restore_and_start_make_private_files(
    rt: Runtime, settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    import stat

    _account, _kept, archive = backed_up(rt, env, tmp_path)
    rt.close()
    fresh = tmp_path / "fresh" / "data"  # neither it nor its parent exists yet
    db = fresh / "permanence.db"
    target_env = {
        **env,
        "PERMANENCE_DATA_DIR": str(fresh),
        "PERMANENCE_DATABASE_URL": f"sqlite:///{db}",
    }
    old = os.umask(0o022)  # the usual umask: files 0644 unless made private
    try:
        restored = run(target_env, "restore", str(archive), "--no-erasure-since").stdout
        assert "restored the backup" in restored
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        # The service starting on an install made before (0755/0644) tightens them.
        os.chmod(fresh, 0o755)  # noqa: S103 -- an older install's modes, on purpose
        os.chmod(db, 0o644)
        started = Runtime.from_settings(
            settings.model_copy(update={"data_dir": fresh, "database_url": f"sqlite:///{db}"})
        )
        try:
            with started.db.engine.begin() as conn:
                conn.execute(text("SELECT 1"))
            assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
            for path in (db, db.with_name(db.name + "-wal")):
                if path.exists():
                    assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        finally:
            started.close()
        # A new database (db upgrade on an empty directory) is created private too.
        other = tmp_path / "other"
        new_db = other / "new.db"
        run(
            {
                **env,
                "PERMANENCE_DATA_DIR": str(other),
                "PERMANENCE_DATABASE_URL": f"sqlite:///{new_db}",
            },
            "db",
            "upgrade",
        )
        assert stat.S_IMODE(other.stat().st_mode) == 0o700
        assert stat.S_IMODE(new_db.stat().st_mode) == 0o600
    finally:
        os.umask(old)
