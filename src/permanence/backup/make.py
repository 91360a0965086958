"""Making a backup: a consistent snapshot of the database (SQLite or PostgreSQL) and the files
its rows point at, written encrypted into one archive while the service runs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Connection, create_engine, inspect, pool, text
from sqlalchemy.engine import make_url

from permanence.backup import archive
from permanence.backup.base import (
    _FILE_ENTRY,
    EPOCH_ENTRY,
    FILE_STORES,
    FORMAT,
    VERSION,
    Report,
    _backend,
    _count_sql,
    _ident,
    _quiet,
    _store_dir,
)
from permanence.config import Settings
from permanence.crypto import epochs as key_epochs
from permanence.db import utcnow
from permanence.errors import Conflict, ValidationFailed


@dataclass
class BackupSummary:
    path: Path
    size: int
    backend: str
    revision: str
    tables: int
    rows: int
    files: int
    missing_files: int
    journal_entries: int
    seconds: float
    key_id: str

    def line(self) -> str:
        return (
            f"backup written to {self.path} ({self.size / 1e6:.1f} MB): {self.backend} database "
            f"at revision {self.revision}, {self.tables} tables, {self.rows} rows, "
            f"{self.files} files ({self.missing_files} missing), {self.journal_entries} "
            f"erasure journal entries; {self.seconds:.1f} s; backup key id {self.key_id}"
        )


@dataclass
class _Snapshot:
    created_at: dt.datetime = field(default_factory=utcnow)
    revision: str = ""
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[tuple[str, str]] = field(default_factory=list)  # (store, key)
    journal_entries: int = 0
    # The newest erasure journal entry the snapshot holds: a journal read at restore must
    # hold it to show that it covers the time since (restore.py, journal.covers).
    journal_last: str | None = None
    # The erasure-epoch key file as it was at the snapshot (sealed under the master key),
    # kept in the archive under the backup key: the snapshot's subject keys need it (ADR 0029).
    epoch_keys: bytes | None = None


def make_backup(
    settings: Settings, out: Path, key: bytes, report: Report = _quiet
) -> BackupSummary:
    """Write a consistent, encrypted backup of the database and its files to ``out``."""
    t0 = time.perf_counter()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if out.exists():
        raise Conflict(f"{out} already exists: refusing to overwrite it")
    staging = Path(tempfile.mkdtemp(prefix=".backup-", dir=settings.data_dir))
    snap = _Snapshot()
    writer = archive.Writer()
    missing = [0]
    try:
        if settings.is_postgres:
            db_entries = _pg_entries(settings, writer, snap)
        else:
            db_entries = _sqlite_entries(settings, writer, snap, staging)

        def container() -> Iterator[bytes]:
            report("backing up", 0, None)
            yield from db_entries
            steps = 1 + len(snap.files)  # the database, then each file
            report("backing up", 1, steps)
            for done, (store, key_) in enumerate(snap.files, start=2):
                report("backing up", done, steps)
                if not _FILE_ENTRY.match(f"files/{store}/{key_}"):
                    missing[0] += 1  # not a storage key of ours: nothing to read under it
                    continue
                path = _store_dir(settings, store) / key_
                try:
                    fh = path.open("rb")
                except FileNotFoundError:
                    missing[0] += 1  # removed since the snapshot (an erasure, a download used)
                    continue
                with fh:
                    yield from writer.entry(f"files/{store}/{key_}", _chunks_of(fh))
            yield from writer.finish(_manifest(settings, snap, writer, missing[0]))

        size = archive.write(out, key, container())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BackupSummary(
        path=out,
        size=size,
        backend=_backend(settings),
        revision=snap.revision,
        tables=len(snap.tables),
        rows=sum(t["rows"] for t in snap.tables.values()),
        files=len(snap.files) - missing[0],
        missing_files=missing[0],
        journal_entries=snap.journal_entries,
        seconds=time.perf_counter() - t0,
        key_id=archive.key_id(key),
    )


def _chunks_of(fh: BinaryIO) -> Iterator[bytes]:
    while chunk := fh.read(archive.BLOCK):
        yield chunk


def _manifest(settings: Settings, snap: _Snapshot, writer: archive.Writer, missing: int) -> bytes:
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "backend": _backend(settings),
        "recordings_backend": settings.recordings_backend,
        "revision": snap.revision,
        "created_at": snap.created_at.isoformat(),
        "tables": snap.tables,
        "files": {store: sum(1 for s, _ in snap.files if s == store) for store in FILE_STORES}
        | {"missing": missing},
        "erasure_journal_entries": snap.journal_entries,
        "erasure_journal_last": snap.journal_last,
        "entries": writer.entries,
    }
    return json.dumps(doc, indent=1, sort_keys=False).encode()


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValidationFailed("the configured SQLite database is not a file")
    return Path(database)


def _sqlite_entries(
    settings: Settings, writer: archive.Writer, snap: _Snapshot, staging: Path
) -> Iterator[bytes]:
    source_path = _sqlite_path(settings.effective_database_url)
    if not source_path.exists():
        raise ValidationFailed(f"there is no database at {source_path}")
    copy = staging / "db.sqlite"
    src = sqlite3.connect(source_path, timeout=30)
    dst = sqlite3.connect(copy)
    try:
        # One step (pages=-1): the copy is the database at one instant, under a read
        # transaction that writers in WAL mode do not wait for. No epoch rotation meanwhile:
        # the epoch file copied with it holds every key its rows are wrapped under.
        with key_epochs.rotation_lock(settings.effective_erasure_epoch_file):
            src.backup(dst)
            snap.epoch_keys = key_epochs.read_sealed(settings.effective_erasure_epoch_file)
        snap.created_at = utcnow()
        dst.execute("PRAGMA journal_mode=DELETE")
        snap.revision = _one(dst, "SELECT version_num FROM alembic_version")
        names = [
            r[0]
            for r in dst.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' AND name != 'alembic_version' ORDER BY name"
            )
        ]
        for name in names:
            snap.tables[name] = {"rows": int(_one(dst, _count_sql(name)))}
        snap.files = _referenced_files(lambda sql: [r[0] for r in dst.execute(sql)], names)
        snap.journal_entries = snap.tables.get("erasure_journal", {}).get("rows", 0)
        if "erasure_journal" in names:
            last = dst.execute(
                "SELECT id FROM erasure_journal ORDER BY erased_at DESC, id DESC LIMIT 1"
            ).fetchone()
            snap.journal_last = str(uuid.UUID(str(last[0]))) if last else None
    finally:
        dst.close()
        src.close()
    return _lazy_entry(writer, "db/sqlite", copy, snap)


def _lazy_entry(writer: archive.Writer, name: str, path: Path, snap: _Snapshot) -> Iterator[bytes]:
    yield from _epoch_entry(writer, snap)
    yield from writer.entry(name, archive.file_chunks(path))


def _epoch_entry(writer: archive.Writer, snap: _Snapshot) -> Iterator[bytes]:
    if snap.epoch_keys is not None:
        yield from writer.entry(EPOCH_ENTRY, iter([snap.epoch_keys]))


def _one(conn: sqlite3.Connection, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    if row is None:
        raise ValidationFailed("the database has no schema revision (never migrated?)")
    return row[0]


_FILES_SQL = {
    "recordings": "SELECT storage_key FROM recordings ORDER BY storage_key",
    "rights": "SELECT storage_key FROM rights_downloads WHERE used_at IS NULL ORDER BY storage_key",
    "training": "SELECT storage_key FROM training_attestations ORDER BY storage_key",
}
_FILES_TABLE = {
    "recordings": "recordings",
    "rights": "rights_downloads",
    "training": "training_attestations",
}


def _referenced_files(query: Any, tables: list[str]) -> list[tuple[str, str]]:
    out = []
    for store in FILE_STORES:
        if _FILES_TABLE[store] in tables:
            out += [(store, str(k)) for k in query(_FILES_SQL[store])]
    return out


def _pg_entries(settings: Settings, writer: archive.Writer, snap: _Snapshot) -> Iterator[bytes]:
    engine = create_engine(settings.effective_migration_url, poolclass=pool.NullPool)
    try:
        with (
            engine.connect().execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            ) as conn,
            conn.begin(),
        ):
            # The snapshot is taken at the first statement: everything below sees it. No
            # epoch rotation meanwhile: the epoch file copied with it holds every key its
            # rows are wrapped under (a rotation after the snapshot keeps them until done).
            with key_epochs.rotation_lock(settings.effective_erasure_epoch_file):
                snap.created_at = conn.execute(text("SELECT now()")).scalar_one()
                snap.epoch_keys = key_epochs.read_sealed(settings.effective_erasure_epoch_file)
            yield from _epoch_entry(writer, snap)
            snap.revision = conn.execute(
                text("SELECT version_num FROM alembic_version")
            ).scalar_one()
            insp = inspect(conn)
            order = [
                t
                for t, _fks in insp.get_sorted_table_and_fkc_names()
                if t and t != "alembic_version"  # the revision is in the manifest
            ]
            secured = _rls_tables(conn)
            accounts = [
                str(a) for a in conn.execute(text("SELECT id FROM accounts ORDER BY id")).scalars()
            ]
            raw = conn.connection.driver_connection
            assert raw is not None
            files: list[tuple[str, str]] = []
            for table in order:
                columns = [c["name"] for c in insp.get_columns(table)]
                info: dict[str, Any] = {"rows": 0, "columns": columns}
                snap.tables[table] = info
                for account in accounts if table in secured else [None]:
                    if account is not None:
                        _act_for(conn, account)
                    n = conn.execute(text(_count_sql(table))).scalar_one()
                    if table in _FILES_TABLE.values():
                        store = next(s for s, t in _FILES_TABLE.items() if t == table)
                        files += [
                            (store, str(k)) for k in conn.execute(text(_FILES_SQL[store])).scalars()
                        ]
                    if not n:
                        continue
                    info["rows"] += int(n)
                    name = f"pg/{table}" + (f"/{account}" if account else "")
                    yield from writer.entry(name, _copy_out(raw, table, columns))
            if settings.recordings_backend == "postgresql":
                # The recordings are rows of stored_files / stored_file_chunks, copied above
                # with the other tables (ADR 0036): there is no file to add.
                files = [(store, k) for store, k in files if store != "recordings"]
            snap.files = files
            snap.journal_entries = snap.tables.get("erasure_journal", {}).get("rows", 0)
            newest: list[tuple[Any, str]] = []
            for account in accounts:
                _act_for(conn, account)
                row = conn.execute(
                    text(
                        "SELECT erased_at, id FROM erasure_journal "
                        "ORDER BY erased_at DESC, id DESC LIMIT 1"
                    )
                ).first()
                if row is not None:
                    newest.append((row[0], str(row[1])))
            snap.journal_last = max(newest)[1] if newest else None
    finally:
        engine.dispose()


def _act_for(conn: Connection, account: str) -> None:
    conn.execute(text("SELECT set_config('app.account_id', :a, true)"), {"a": account})


def _rls_tables(conn: Connection) -> set[str]:
    return set(
        conn.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relrowsecurity"
            )
        ).scalars()
    )


def _copy_out(raw: Any, table: str, columns: list[str]) -> Iterator[bytes]:
    cols = ", ".join(_ident(c) for c in columns)
    sql = f"COPY (SELECT {cols} FROM {_ident(table)}) TO STDOUT (FORMAT BINARY)"  # noqa: S608
    with raw.cursor() as cur, cur.copy(sql) as cp:
        for data in cp:
            yield bytes(data)
