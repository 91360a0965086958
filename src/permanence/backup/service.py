"""``permanence backup`` and ``permanence restore`` (docs/backup.md, ADR 0008).

Backup, while the service runs: one consistent snapshot of the whole database — SQLite's
online backup API (one step, so the copy is one point in time while writers go on in WAL
mode), or on PostgreSQL every table copied (binary COPY) inside one REPEATABLE READ READ ONLY
transaction of the schema owner, account by account for the tables under row-level security
— then the recording and download files that snapshot references (files are written before
the row that names them commits, and never changed, so they are there). Everything goes into
one encrypted archive (``archive``) with a manifest.

Restore: the archive is decrypted into a private staging directory and checked completely
(authentication of every byte, then the manifest) before anything is touched. The erasure
journal is gathered from the target database as it is, from the mirror file, and from any
``--journal`` exports; the database is replaced and brought to the current schema; the files
are put in place; then every journalled erasure is replayed (``rights.replay_erasure``), so an
erased caller stays erased, and every journalled off-boarding (``replay_offboarding``), so an
off-boarded client stays off-boarded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Connection, MetaData, create_engine, inspect, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from permanence import schema
from permanence.backup import archive
from permanence.backup import journal as ejournal
from permanence.backup.journal import JournalEntry
from permanence.config import Settings
from permanence.crypto.keyring import Keyring
from permanence.db import utcnow
from permanence.errors import Conflict, IntegrityFailure, ValidationFailed
from permanence.fsmodes import private_dir, private_file

FORMAT = "permanence-backup"
VERSION = 1
FILE_STORES = ("recordings", "rights", "training")
_PG_ENTRY = re.compile(r"^pg/([a-z_][a-z0-9_]*)(?:/([0-9a-f-]{36}))?$")
_FILE_ENTRY = re.compile(r"^files/(recordings|rights|training)/([0-9a-f-]{36}/[0-9a-f-]{36}\.pmr)$")
# What the service writes in its file stores: a file, or one whose write was cut short.
_OWN_FILE = re.compile(r"^[0-9a-f-]{36}/[0-9a-f-]{36}\.(?:pmr|part)$")
# How long work tells its progress (a bar on a terminal): report(what, done, total), total
# None while unknown.
Report = Callable[[str, int, int | None], None]


def _quiet(_what: str, _done: int, _total: int | None) -> None:
    return None


_NOT_DATA = ("alembic_version", "audit_head")  # present in a freshly migrated, empty database


def _store_dir(settings: Settings, store: str) -> Path:
    # "training": the staff's training attestations (staff.attestations.store_for).
    return settings.recordings_dir if store == "recordings" else settings.data_dir / store


def _backend(settings: Settings) -> str:
    return "postgresql" if settings.is_postgres else "sqlite"


def _ident(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValidationFailed("unexpected table or column name in the database")
    return f'"{name}"'


def _count_sql(table: str) -> str:
    return f"SELECT count(*) FROM {_ident(table)}"  # noqa: S608 (a checked identifier)


def _any_sql(table: str) -> str:
    return f"SELECT 1 FROM {_ident(table)} LIMIT 1"  # noqa: S608 (a checked identifier)


# -- backup -----------------------------------------------------------------------------------


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
        "revision": snap.revision,
        "created_at": snap.created_at.isoformat(),
        "tables": snap.tables,
        "files": {store: sum(1 for s, _ in snap.files if s == store) for store in FILE_STORES}
        | {"missing": missing},
        "erasure_journal_entries": snap.journal_entries,
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
        # transaction that writers in WAL mode do not wait for.
        src.backup(dst)
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
    finally:
        dst.close()
        src.close()
    return _lazy_entry(writer, "db/sqlite", copy)


def _lazy_entry(writer: archive.Writer, name: str, path: Path) -> Iterator[bytes]:
    yield from writer.entry(name, archive.file_chunks(path))


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
            # The snapshot is taken at the first statement: everything below sees it.
            snap.created_at = conn.execute(text("SELECT now()")).scalar_one()
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
            snap.files = files
            snap.journal_entries = snap.tables.get("erasure_journal", {}).get("rows", 0)
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


# -- restore ----------------------------------------------------------------------------------


@dataclass
class Staged:
    manifest: dict[str, Any]
    entries: list[tuple[str, Path]]


@dataclass
class RestoreSummary:
    backend: str
    revision: str
    created_at: str
    upgraded_to: str
    rows: int
    files: int
    journal_sources: dict[str, int]
    journal_entries: int
    replayed: int
    accounts_absent: int
    seconds: float

    def line(self) -> str:
        sources = ", ".join(f"{v} from {k}" for k, v in self.journal_sources.items())
        upgraded = f", upgraded to {self.upgraded_to}" if self.upgraded_to != self.revision else ""
        return (
            f"restored the backup of {self.created_at} ({self.backend}, revision "
            f"{self.revision}{upgraded}): {self.rows} rows, {self.files} files; erasure journal: "
            f"{self.journal_entries} entries ({sources}), {self.replayed} replayed, "
            f"{self.accounts_absent} for accounts not in the backup; {self.seconds:.1f} s"
        )


def check_archive(settings: Settings, source: Path, key: bytes) -> dict[str, Any]:
    """Decrypt and check an archive completely without restoring it; its manifest."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=settings.data_dir))
    try:
        return stage(source, key, staging).manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def stage(source: Path, key: bytes, staging: Path, report: Report = _quiet) -> Staged:
    """Decrypt ``source`` into ``staging`` and check it all: every byte authenticated, every
    entry as the manifest says. Raises before anything outside ``staging`` is touched."""
    found: dict[str, dict[str, int | str]] = {}
    entries: list[tuple[str, Path]] = []
    manifest_raw: bytes | None = None
    try:
        fh = source.open("rb")
    except OSError:
        raise ValidationFailed(f"cannot read the archive {source}") from None
    size = os.fstat(fh.fileno()).st_size
    with fh:
        for name, blocks in archive.open_archive(fh, key):
            report("checking the archive", min(fh.tell(), size), size)
            if manifest_raw is not None:
                raise ValidationFailed("the archive's content is malformed (entry after manifest)")
            if name == archive.MANIFEST:
                manifest_raw = b"".join(blocks)
                continue
            if name != "db/sqlite" and not (_PG_ENTRY.match(name) or _FILE_ENTRY.match(name)):
                raise ValidationFailed("the archive's content is malformed (unknown entry)")
            if name in found:
                raise ValidationFailed("the archive's content is malformed (repeated entry)")
            path = staging / f"{len(entries):07d}"
            digest, size = hashlib.sha256(), 0
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                for block in blocks:
                    digest.update(block)
                    size += len(block)
                    out.write(block)
            found[name] = {"size": size, "sha256": digest.hexdigest()}
            entries.append((name, path))
    if manifest_raw is None:
        raise ValidationFailed("the archive has no manifest")
    try:
        manifest = json.loads(manifest_raw)
    except ValueError:
        raise ValidationFailed("the archive's manifest is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValidationFailed("the archive's manifest is not a Permanence backup manifest")
    if manifest.get("version") != VERSION:
        raise ValidationFailed(
            f"backup format version {manifest.get('version')} is not readable by this version"
        )
    if manifest.get("entries") != found:
        raise IntegrityFailure("the archive's content does not match its manifest")
    return Staged(manifest, entries)


def _known_revision(url: str, revision: str) -> str:
    """The head this code migrates to; refuses a revision it does not know (newer backup)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(schema.alembic_config(url))
    try:
        script.get_revision(revision)
    except Exception:
        raise ValidationFailed(
            f"the backup is at schema revision {revision}, unknown to this version of "
            "Permanence (made by a newer version?): restore it with that version"
        ) from None
    head = script.get_current_head()
    assert head is not None
    return head


def unrecognised_files(settings: Settings) -> list[Path]:
    """Files in the stores the restore replaces that the service did not write (a
    ``<uuid>/<uuid>.pmr`` file, or ``.part`` for a write cut short): someone else's."""
    found: list[Path] = []
    for store in FILE_STORES:
        root = _store_dir(settings, store)
        if root.exists():
            found += sorted(
                p
                for p in root.rglob("*")
                if not p.is_dir() and not _OWN_FILE.match(p.relative_to(root).as_posix())
            )
    return found


def _refuse_unrecognised_files(settings: Settings, shown: int = 10) -> None:
    """A restore replaces the stores' files with the backup's: it deletes only files it
    knows are the service's, and refuses, before touching anything, when others are there."""
    found = unrecognised_files(settings)
    if found:
        names = ", ".join(str(p) for p in found[:shown])
        more = f" and {len(found) - shown} more" if len(found) > shown else ""
        raise Conflict(
            f"the data directory holds {len(found)} file(s) this service did not write, which "
            f"a restore would delete: {names}{more}. Move them out of the data directory, "
            "then restore again (nothing was changed)"
        )


def _target(settings: Settings) -> tuple[bool, list[JournalEntry]]:
    """Whether the target holds data (database rows or files), and its erasure journal."""
    has_data = any(
        p.is_file() for store in FILE_STORES for p in _store_dir(settings, store).rglob("*")
    )
    url = settings.effective_migration_url
    if not settings.is_postgres and not _sqlite_path(url).exists():
        return has_data, []
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            for table in inspect(conn).get_table_names():
                if table in _NOT_DATA:
                    continue
                if conn.execute(text(_any_sql(table))).first():
                    has_data = True
                    break
            entries = ejournal.read_database(conn)
    finally:
        engine.dispose()
    return has_data, entries


def restore(
    settings: Settings,
    source: Path,
    key: bytes,
    *,
    force: bool = False,
    journal_files: list[Path] | None = None,
    report: Report = _quiet,
) -> RestoreSummary:
    """Restore ``source`` into the configured database and data directory, then replay the
    erasure journal. Stop the service first: the database is replaced."""
    t0 = time.perf_counter()
    # The master key is needed after the restore: fail now, before anything is touched.
    keyring = Keyring.from_settings(settings)
    mirror = ejournal.ErasureMirror.from_settings(settings, keyring)
    private_dir(settings.data_dir)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=settings.data_dir))
    try:
        staged = stage(source, key, staging, report)
        manifest = staged.manifest
        backend, revision = manifest["backend"], str(manifest["revision"])
        if backend != _backend(settings):
            raise ValidationFailed(
                f"the backup is of a {backend} database and the configured database is "
                f"{_backend(settings)}: restore it into a {backend} database"
            )
        head = _known_revision(settings.effective_migration_url, revision)
        _refuse_unrecognised_files(settings)
        has_data, live = _target(settings)
        if has_data and not force:
            raise Conflict(
                "the target database or data directory is not empty: give --force to replace "
                "it (its erasure journal is read first and replayed after the restore)"
            )
        sources = {
            "the target database": live,
            "the mirror file": mirror.entries(),
        }
        for path in journal_files or []:
            sources[str(path)] = ejournal.read_file(path, mirror.mac_key)
        entries = ejournal.merge(*sources.values())
        if settings.is_postgres:
            _load_pg(settings, staged, revision)
        else:
            _load_sqlite(settings, staged)
        schema.upgrade(settings.effective_migration_url, settings.database_app_role)
        files = _place_files(settings, staged, report)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    replayed, absent = replay(
        settings,
        keyring,
        entries,
        action="backup.restore",
        details={
            "revision": revision,
            "backup_created_at": str(manifest["created_at"])[:32].replace(" ", "T"),
            "rows": sum(int(t["rows"]) for t in manifest["tables"].values()),
            "journal_entries": len(entries),
        },
        report=report,
    )
    known = {e.id for e in mirror.entries()}
    mirror.append(e for e in entries if e.id not in known)
    return RestoreSummary(
        backend=backend,
        revision=revision,
        created_at=str(manifest["created_at"]),
        upgraded_to=head,
        rows=sum(int(t["rows"]) for t in manifest["tables"].values()),
        files=files,
        journal_sources={k: len(v) for k, v in sources.items()},
        journal_entries=len(entries),
        replayed=replayed,
        accounts_absent=absent,
        seconds=time.perf_counter() - t0,
    )


def _load_sqlite(settings: Settings, staged: Staged) -> None:
    paths = [p for name, p in staged.entries if name == "db/sqlite"]
    if len(paths) != 1:
        raise ValidationFailed("the archive holds no SQLite database")
    target = _sqlite_path(settings.effective_migration_url)
    target.parent.mkdir(parents=True, exist_ok=True)
    private_file(target)  # 0600 before SQLite writes a page into it
    src = sqlite3.connect(paths[0])
    dst = sqlite3.connect(target, timeout=30)
    try:
        src.backup(dst)  # page by page into the target, through SQLite (WAL files included)
    finally:
        dst.close()
        src.close()


def _load_pg(settings: Settings, staged: Staged, revision: str) -> None:
    """One transaction of the schema owner: the schema at the backup's revision, every table
    emptied then loaded (row-level security lifted for the load only), counts checked."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    url = settings.effective_migration_url
    tables: dict[str, dict[str, Any]] = staged.manifest["tables"]
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            names = inspect(conn).get_table_names()
            current = (
                MigrationContext.configure(conn).get_current_revision()
                if "alembic_version" in names
                else None
            )
            if current != revision:
                existing = MetaData()
                existing.reflect(conn)
                existing.drop_all(conn)
                cfg = schema.alembic_config(url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                names = inspect(conn).get_table_names()
            data = [t for t in names if t != "alembic_version"]
            if set(data) != set(tables):
                raise ValidationFailed("the backup's tables differ from its schema revision's")
            conn.execute(text(f"TRUNCATE {', '.join(_ident(t) for t in data)}"))
            secured = _rls_tables(conn)
            for table in secured:
                conn.execute(text(f"ALTER TABLE {_ident(table)} NO FORCE ROW LEVEL SECURITY"))
            raw = conn.connection.driver_connection
            assert raw is not None
            for name, path in staged.entries:
                m = _PG_ENTRY.match(name)
                if not m:
                    continue
                table = m.group(1)
                cols = ", ".join(_ident(c) for c in tables[table]["columns"])
                with (
                    raw.cursor() as cur,
                    cur.copy(f"COPY {_ident(table)} ({cols}) FROM STDIN (FORMAT BINARY)") as cp,
                ):
                    for chunk in archive.file_chunks(path):
                        cp.write(chunk)
            for table, info in tables.items():
                n = conn.execute(text(_count_sql(table))).scalar_one()
                if int(n) != int(info["rows"]):
                    raise IntegrityFailure("a restored table does not hold the rows it should")
            for table in secured:
                conn.execute(text(f"ALTER TABLE {_ident(table)} FORCE ROW LEVEL SECURITY"))
    finally:
        engine.dispose()


def _place_files(settings: Settings, staged: Staged, report: Report = _quiet) -> int:
    """Each store becomes what the backup holds: files put in place atomically, files the
    restored database does not reference removed."""
    wanted: dict[str, set[str]] = {s: set() for s in FILE_STORES}
    for done, (name, path) in enumerate(staged.entries, start=1):
        report("restoring files", done, len(staged.entries))
        m = _FILE_ENTRY.match(name)
        if not m:
            continue
        store, key = m.group(1), m.group(2)
        dest = _store_dir(settings, store) / key
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(path, dest)
        wanted[store].add(key)
    for store in FILE_STORES:
        root = _store_dir(settings, store)
        if not root.exists():
            continue
        for p in root.rglob("*"):
            if p.is_file() and p.relative_to(root).as_posix() not in wanted[store]:
                p.unlink()
    return sum(len(v) for v in wanted.values())


def replay_journal(
    settings: Settings, journal_files: list[Path] | None = None, report: Report = _quiet
) -> tuple[dict[str, int], int, int, int]:
    """Replay the journal (the database's own, the mirror file, exports) on the database as it
    is: after a restore made by other means (PostgreSQL point-in-time recovery, a disk
    snapshot). Returns (entries per source, entries, replayed, accounts absent)."""
    keyring = Keyring.from_settings(settings)
    mirror = ejournal.ErasureMirror.from_settings(settings, keyring)
    _has_data, live = _target(settings)
    sources = {"the database": live, "the mirror file": mirror.entries()}
    for path in journal_files or []:
        sources[str(path)] = ejournal.read_file(path, mirror.mac_key)
    entries = ejournal.merge(*sources.values())
    replayed, absent = replay(
        settings,
        keyring,
        entries,
        action="rights.journal_replay",
        details={"journal_entries": len(entries)},
        report=report,
    )
    known = {e.id for e in mirror.entries()}
    mirror.append(e for e in entries if e.id not in known)
    return {k: len(v) for k, v in sources.items()}, len(entries), replayed, absent


def replay(
    settings: Settings,
    keyring: Keyring,
    entries: list[JournalEntry],
    *,
    action: str,
    details: dict[str, str | int],
    report: Report = _quiet,
) -> tuple[int, int]:
    """Record the restore (``action``) in the audit log, then replay every journalled erasure
    and off-boarding in time order, one transaction per account; files are deleted after each
    commit. Returns (replayed, entries whose account is not in the database)."""
    from sqlalchemy import select

    from permanence.accounts.model import Account
    from permanence.audit import service as audit
    from permanence.context import AccessContext
    from permanence.recordings.storage import LocalStore
    from permanence.rights import service as rights
    from permanence.runtime import Runtime

    rt = Runtime(settings, _database(settings), keyring)
    rt.db.erasure_mirror = None  # entries come from the journal: not written to it again here
    stores = {
        "recordings": LocalStore(_store_dir(settings, "recordings")),
        "files": LocalStore(_store_dir(settings, "rights")),
    }
    try:
        with rt.db.session(AccessContext.system("backup:restore")) as s:
            accounts = set(s.scalars(select(Account.id)))
            audit.record(s, action, "database", None, details=details)
        by_account: dict[uuid.UUID, list[JournalEntry]] = defaultdict(list)
        absent = 0
        for e in entries:
            if e.account_id in accounts:
                by_account[e.account_id].append(e)
            else:
                absent += 1
        replayed = 0
        steps, step = sum(len(b) for b in by_account.values()), 0
        report("erasure journal replay", 0, steps)
        for account_id, batch in by_account.items():
            files: list[tuple[str, str]] = []
            with rt.db.session(AccessContext.system("backup:restore", account_id)) as s:
                for e in batch:
                    step += 1
                    report("erasure journal replay", step, steps)
                    if e.is_account:
                        changed, freed = replay_offboarding(s, keyring, e)
                        replayed += changed
                        files += freed
                        continue
                    done, applied = rights.replay_erasure(s, keyring, e)
                    replayed += applied
                    files += done.files
            for store, key in files:
                stores[store].delete(key)
        return replayed, absent
    finally:
        rt.close()


def replay_offboarding(
    session: Session, keyring: Keyring, entry: JournalEntry
) -> tuple[bool, tuple[tuple[str, str], ...]]:
    """Carry out again a journalled off-boarding on a restored database: if the account is
    there and not off-boarded, ``destroy_account`` (the one code path of an off-boarding,
    audited as a replay); if it is already off-boarded, only its journal row is put back if
    missing. Returns whether anything changed (running it twice changes nothing the second
    time) and the files the deleted rows pointed at, for the caller to delete after the
    commit."""
    from permanence.accounts.model import Account, AccountStatus
    from permanence.audit import service as audit
    from permanence.contracts import offboarding

    account = session.get(Account, entry.account_id)
    if account is None:
        return False, ()
    if account.status != AccountStatus.OFFBOARDED:
        cert = offboarding.destroy_account(
            session, keyring, entry.account_id, export=None, replay=entry
        )
        return True, cert.files
    if not ejournal.ensure(session, entry):
        return False, ()
    audit.record(
        session,
        "account.offboard.replay",
        "account",
        entry.account_id,
        details={"journal_entry": entry.id, "journal_restored": True},
    )
    return True, ()


def _database(settings: Settings) -> Any:
    from permanence.db import Database

    return Database(settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous)
