"""The recordings store in PostgreSQL (PERMANENCE_RECORDINGS_BACKEND=postgresql, ADR 0036):
chunked, all or nothing, streamed both ways, under row-level security, in the backups, and
shredded by an erasure."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tracemalloc
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine, pool, select, text

from permanence.config import Settings
from permanence.context import AccessContext
from permanence.crypto.stream import decrypt_stream, encrypt_stream
from permanence.filestore import storage_key, store_from_settings
from permanence.filestore_db import CHUNK, PostgresStore
from permanence.recordings.model import Recording
from permanence.runtime import Runtime
from tests.conftest import PG_URL, run_cli
from tests.factories import make_account

pg_only = pytest.mark.skipif(not PG_URL, reason="the database recordings store is PostgreSQL's")


def test_the_backend_is_refused_on_sqlite_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as err:
        Settings(
            data_dir=tmp_path,
            database_url=f"sqlite:///{tmp_path / 'p.db'}",
            recordings_backend="postgresql",
        )
    assert "PERMANENCE_RECORDINGS_BACKEND=postgresql needs a PostgreSQL database" in str(err.value)
    with pytest.raises(ValidationError, match="must be local or postgresql"):
        Settings(data_dir=tmp_path, recordings_backend="s3")
    # The command line names the variable (and no traceback: run_cli checks).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERMANENCE_")}
    env |= {"PERMANENCE_DATA_DIR": str(tmp_path), "PERMANENCE_RECORDINGS_BACKEND": "postgresql"}
    done = run_cli(env, "db", "upgrade")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: invalid configuration in PERMANENCE_RECORDINGS_BACKEND"


@pytest.fixture
def db_settings(settings: Settings) -> Settings:
    if not PG_URL:
        pytest.skip("the database recordings store is PostgreSQL's")
    settings.recordings_backend = "postgresql"
    return settings


@pytest.fixture
def store(db_settings: Settings) -> PostgresStore:
    chosen = store_from_settings(db_settings)
    assert isinstance(chosen, PostgresStore)
    return chosen


def _key(rt: Runtime) -> str:
    return storage_key(make_account(rt, "plomberie-durand").id, uuid.uuid4())


def _rows(url: str, account: str, table: str) -> int:
    """Rows of ``table`` the application role sees with ``account`` set (row-level security)."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT set_config('app.account_id', :a, true)"), {"a": account})
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


@pg_only
@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345])
def test_what_is_put_comes_back_byte_for_byte_in_chunks(
    rt: Runtime, store: PostgresStore, size: int
) -> None:
    key = _key(rt)
    data = os.urandom(size)

    def write(fh: BinaryIO) -> int:
        for i in range(0, size, 1000):  # small writes, as encrypt_stream makes them
            fh.write(data[i : i + 1000])
        return 42

    assert store.put(key, write) == 42
    assert store.exists(key)
    with store.open(key) as fh:
        assert fh.read(7) == data[:7]
        assert fh.read() == data[7:]
    account = key.split("/")[0]
    assert _rows(rt.settings.effective_database_url, account, "stored_file_chunks") == max(
        1, -(-size // CHUNK)
    )
    assert store.delete(key) and not store.exists(key)
    assert not store.delete(key)  # deleting twice is not an error
    assert _rows(rt.settings.effective_database_url, account, "stored_file_chunks") == 0
    with pytest.raises(FileNotFoundError):
        store.open(key)


@pg_only
def test_a_put_that_fails_leaves_nothing_and_keeps_the_previous_version(
    rt: Runtime, store: PostgresStore
) -> None:
    key = _key(rt)
    account = key.split("/")[0]

    def broken(fh: BinaryIO) -> int:
        fh.write(os.urandom(3 * CHUNK))  # three chunks already inserted
        raise OSError("the provider hung up")

    with pytest.raises(OSError, match="hung up"):
        store.put(key, broken)
    assert not store.exists(key)
    assert _rows(rt.settings.effective_database_url, account, "stored_file_chunks") == 0

    store.put(key, lambda fh: fh.write(b"first version"))
    with pytest.raises(OSError, match="hung up"):
        store.put(key, broken)  # a retried download that fails again
    with store.open(key) as fh:
        assert fh.read() == b"first version"
    store.put(key, lambda fh: fh.write(b"second"))  # put again: replaced, as LocalStore does
    with store.open(key) as fh:
        assert fh.read() == b"second"
    assert _rows(rt.settings.effective_database_url, account, "stored_files") == 1


@pg_only
def test_rows_are_seen_only_under_their_account_and_keys_are_checked(
    rt: Runtime, store: PostgresStore
) -> None:
    key = _key(rt)
    other = str(make_account(rt, "cabinet-lefevre").id)
    store.put(key, lambda fh: fh.write(b"x" * (CHUNK + 1)))
    url = rt.settings.effective_database_url
    assert _rows(url, key.split("/")[0], "stored_file_chunks") == 2
    assert _rows(url, other, "stored_file_chunks") == 0
    assert _rows(url, other, "stored_files") == 0
    assert _rows(url, "", "stored_files") == 0  # no account set: nothing
    # The same recording id under another account is another key: not found.
    with pytest.raises(FileNotFoundError):
        store.open(f"{other}/{key.split('/')[1]}")
    for bad in ("../etc/passwd", f"{key}/..", key.replace(".pmr", ".txt")):
        with pytest.raises(ValueError, match="invalid recording storage key"):
            store.put(bad, lambda fh: fh.write(b""))


@pg_only
def test_a_file_deleted_while_it_is_read_fails_the_read(rt: Runtime, store: PostgresStore) -> None:
    key = _key(rt)
    store.put(key, lambda fh: fh.write(os.urandom(3 * CHUNK)))
    with store.open(key) as fh:
        assert len(fh.read(CHUNK)) == CHUNK
        store.delete(key)  # an erasure meanwhile
        with pytest.raises(OSError, match="deleted or replaced while it was read"):
            fh.read()


def _blocks(seed: bytes, total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    block = hashlib.sha256(seed).digest() * (size // 32)
    for _ in range(total // size):
        yield block


@pg_only
def test_twenty_megabytes_go_in_and_out_in_constant_memory(
    rt: Runtime, store: PostgresStore
) -> None:
    total = 20 * 1024 * 1024
    key = _key(rt)
    dek, ad = os.urandom(32), b"recordings|audio|test"
    expected = hashlib.sha256()
    for b in _blocks(b"audio", total):
        expected.update(b)
    tracemalloc.start()
    try:
        written = store.put(key, lambda fh: encrypt_stream(dek, ad, _blocks(b"audio", total), fh))
        _, peak_in = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        got, n = hashlib.sha256(), 0
        with store.open(key) as fh:
            for chunk in decrypt_stream(dek, ad, fh):
                got.update(chunk)
                n += len(chunk)
        _, peak_out = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == total and got.digest() == expected.digest()
    assert written == total  # encrypt_stream returns the plaintext size
    # A few chunks at a time, never the file: 2 MB is a tenth of it.
    assert peak_in < 2_000_000, peak_in
    assert peak_out < 2_000_000, peak_out


@pg_only
def test_the_recordings_are_in_the_backup_and_an_erasure_since_is_replayed(
    rt: Runtime, db_settings: Settings, tmp_path: Path
) -> None:
    from tests.integration.test_backup import BACKUP_KEY as KEY
    from tests.integration.test_backup import (
        ERASED,
        KEPT,
        check_consistent,
        cli_env,
        execute,
        lose_everything,
        request_erasure,
        run,
        subject,
    )

    env = cli_env(db_settings) | {
        "PERMANENCE_BACKUP_KEY": KEY,
        "PERMANENCE_RECORDINGS_BACKEND": "postgresql",
    }
    account = make_account(rt, "plomberie-durand").id
    erased, kept = subject(rt, account, ERASED), subject(rt, account, KEPT)
    store = store_from_settings(db_settings)
    assert store.exists(erased.recording_key) and store.exists(kept.recording_key)
    assert not db_settings.recordings_dir.exists() or not any(db_settings.recordings_dir.iterdir())
    request_id = request_erasure(rt, account, ERASED)
    backup = tmp_path / "b.pmbk"
    run(env, "backup", str(backup))
    execute(rt, account, request_id)  # the erasure deletes the recording's rows too
    assert not store.exists(erased.recording_key)
    assert _rows(db_settings.effective_database_url, str(account), "stored_files") == 1
    rt.close()

    manifest = json.loads(_manifest(backup))
    assert manifest["recordings_backend"] == "postgresql"
    assert manifest["tables"]["stored_files"]["rows"] == 2
    assert manifest["tables"]["stored_file_chunks"]["rows"] == 2
    assert manifest["files"]["recordings"] == 0 and manifest["files"]["missing"] == 0

    lose_everything(db_settings)
    local = env | {"PERMANENCE_RECORDINGS_BACKEND": "local"}
    refused = run(local, "restore", str(backup), ok=False).stderr
    assert "keeps its 2 recording(s) in the postgresql recordings backend" in refused
    out = run(env, "restore", str(backup)).stdout
    assert "1 replayed" in out

    back = Runtime.from_settings(db_settings)
    try:
        assert check_consistent(back) == 1  # the kept caller's recording opens and decrypts
        assert store.exists(kept.recording_key)
        assert not store.exists(erased.recording_key)  # the replayed erasure deleted it again
        with back.db.session(AccessContext.system("test", account), readonly=True) as s:
            assert s.scalars(select(Recording.id)).all() == [kept.recording_id]
    finally:
        back.close()


def _manifest(path: Path) -> bytes:
    """The archive's manifest, as a restore reads it (decrypted and checked)."""
    from permanence.backup.restore import stage
    from tests.integration.test_backup import BACKUP_KEY

    staging = path.parent / "staged"
    staging.mkdir()
    return json.dumps(stage(path, base64.b64decode(BACKUP_KEY), staging).manifest).encode()


@pg_only
def test_offboarding_deletes_the_stored_rows_and_leaves_them_out_of_the_export(
    rt: Runtime, db_settings: Settings, tmp_path: Path
) -> None:
    from permanence.contracts import offboarding
    from tests.factories import caller_with_records
    from tests.integration.test_backup import KEPT

    account = make_account(rt, "plomberie-durand").id
    first, last, phone, email = KEPT
    records = caller_with_records(rt, account, first=first, last=last, phone=phone, email=email)
    store = store_from_settings(db_settings)
    assert store.exists(records.recording_key)
    ctx = AccessContext.system("test:offboard", account)
    with rt.db.session(ctx) as s:
        exported = offboarding.export_account(s, rt.keyring, account, tmp_path)
    with zipfile.ZipFile(exported.path) as zf:
        names = set(zf.namelist())
    assert "recordings.json" in names  # the recording's row is the client's record
    assert not names & {"stored_files.json", "stored_file_chunks.json"}  # its storage is not
    with rt.db.session(ctx) as s:
        cert = offboarding.destroy_account(s, rt.keyring, account, export=exported)
    assert cert.document["rows_deleted"]["stored_file_chunks"] == 1
    assert not store.exists(records.recording_key)
    url = db_settings.effective_database_url
    assert (
        _rows(url, str(account), "stored_files")
        == _rows(url, str(account), "stored_file_chunks")
        == 0
    )
