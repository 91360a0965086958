"""Restoring: check and stage the archive, refuse a target holding other data, load the
database, place the files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_engine, inspect, pool, text

from permanence import schema
from permanence.backup import archive
from permanence.backup import journal as ejournal
from permanence.backup.base import (
    _FILE_ENTRY,
    _OWN_FILE,
    _PG_ENTRY,
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
from permanence.backup.make import _rls_tables, _sqlite_path
from permanence.backup.replay import ReplaySteps, _target, replay
from permanence.config import Settings
from permanence.crypto.keyring import Keyring
from permanence.errors import Conflict, IntegrityFailure, ValidationFailed
from permanence.fsmodes import private_dir, private_file


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
    journal_cover: str = "journal"

    def line(self) -> str:
        sources = ", ".join(f"{v} from {k}" for k, v in self.journal_sources.items())
        upgraded = f", upgraded to {self.upgraded_to}" if self.upgraded_to != self.revision else ""
        return (
            f"restored the backup of {self.created_at} ({self.backend}, revision "
            f"{self.revision}{upgraded}): {self.rows} rows, {self.files} files; erasure journal: "
            f"{self.journal_entries} entries ({sources}), {self.replayed} replayed, "
            f"{self.accounts_absent} for accounts not in the backup; {self.seconds:.1f} s"
            + (
                "; no journal covered the time since the backup: restored on the statement "
                "that no one was erased since (--no-erasure-since, in the audit log)"
                if self.journal_cover == "declared"
                else ""
            )
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
            if name not in ("db/sqlite", EPOCH_ENTRY) and not (
                _PG_ENTRY.match(name) or _FILE_ENTRY.match(name)
            ):
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


def _refuse_other_recordings_backend(settings: Settings, manifest: dict[str, Any]) -> None:
    """A backup's recordings come back where it kept them: files (local) or rows of the
    database (postgresql, ADR 0036). Restored under the other setting, the service would
    look for them in the wrong place: refused, when the backup holds any."""
    kept = str(manifest.get("recordings_backend", "local"))
    if kept == settings.recordings_backend:
        return
    if kept == "local":
        held = int(manifest.get("files", {}).get("recordings", 0))
    else:
        held = int(manifest.get("tables", {}).get("stored_files", {}).get("rows", 0))
    if held:
        raise ValidationFailed(
            f"the backup keeps its {held} recording(s) in the {kept} recordings backend and "
            f"PERMANENCE_RECORDINGS_BACKEND is {settings.recordings_backend}: restore it with "
            f"PERMANENCE_RECORDINGS_BACKEND={kept} (nothing was changed)"
        )


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


def restore(
    settings: Settings,
    source: Path,
    key: bytes,
    *,
    force: bool = False,
    journal_files: list[Path] | None = None,
    no_erasure_since: bool = False,
    report: Report = _quiet,
    steps: ReplaySteps,
) -> RestoreSummary:
    """Restore ``source`` into the configured database and data directory, then replay the
    erasure journal. Stop the service first: the database is replaced.

    Refused, before anything is touched, unless a journal file (the mirror, or one given)
    covers the time since the backup (``journal.covers``), or ``no_erasure_since`` says
    that no erasure happened since; that statement is recorded in the audit log. ``steps``:
    who carries each journal entry out again (``backup.replay.ReplaySteps``)."""
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
        _refuse_other_recordings_backend(settings, manifest)
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
        files: dict[str, list[ejournal.JournalEntry]] = {}
        if mirror.path.exists():
            files[f"the mirror file {mirror.path}"] = sources["the mirror file"]
        for path in journal_files or []:
            sources[str(path)] = files[str(path)] = ejournal.read_file(path, mirror.mac_key)
        entries = ejournal.merge(*sources.values())
        cover = _journal_cover(manifest, mirror.path, files, no_erasure_since)
        if settings.is_postgres:
            _load_pg(settings, staged, revision)
        else:
            _load_sqlite(settings, staged)
        schema.upgrade(settings.effective_migration_url, settings.database_app_role)
        _restore_epoch_keys(keyring, staged)
        placed = _place_files(settings, staged, report)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    replayed, absent = replay(
        settings,
        keyring,
        entries,
        steps=steps,
        action="backup.restore",
        details={
            "revision": revision,
            "backup_created_at": str(manifest["created_at"])[:32].replace(" ", "T"),
            "rows": sum(int(t["rows"]) for t in manifest["tables"].values()),
            "journal_entries": len(entries),
            "journal_cover": cover,
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
        files=placed,
        journal_sources={k: len(v) for k, v in sources.items()},
        journal_entries=len(entries),
        replayed=replayed,
        accounts_absent=absent,
        seconds=time.perf_counter() - t0,
        journal_cover=cover,
    )


def _journal_cover(
    manifest: dict[str, Any],
    mirror: Path,
    files: dict[str, list[ejournal.JournalEntry]],
    no_erasure_since: bool,
) -> str:
    """How the time since the backup is known to be covered: "journal" (a file read covers
    it) or "declared" (the operator said no erasure happened since). Else refuse, naming
    what is missing: a restore without the journal brings erased callers back."""
    raw = manifest.get("erasure_journal_last")
    anchor = uuid.UUID(str(raw)) if raw else None
    missing = {where: ejournal.covers(entries, anchor) for where, entries in files.items()}
    if any(reason is None for reason in missing.values()):
        return "journal"
    if no_erasure_since:
        return "declared"
    if anchor is not None:
        since = f"the backup holds erasures up to journal entry {anchor}"
    elif manifest.get("erasure_journal_entries"):
        since = "the backup names no newest journal entry (made by an older version)"
    else:
        since = "the backup holds no erasure"
    read = "; ".join(f"{where}: {why}" for where, why in missing.items()) or (
        f"no journal was read (the mirror file {mirror} does not exist, no --journal given)"
    )
    raise Conflict(
        f"no erasure journal covers the time since the backup of {manifest['created_at']} "
        f"({since}): {read}. Give --journal with a journal that covers it (a copy of the "
        "mirror file, or 'rights journal-export' from the lost database), or "
        "--no-erasure-since if no one was erased since the backup (recorded in the audit "
        "log). Nothing was changed"
    )


def _restore_epoch_keys(keyring: Keyring, staged: Staged) -> None:
    """The backup's erasure-epoch keys into the epoch file (its rows are wrapped under them);
    a rotation is made due, which destroys them again once the rows are re-wrapped."""
    paths = [p for name, p in staged.entries if name == EPOCH_ENTRY]
    if keyring.epochs is None or not paths:
        return
    keyring.epochs.merge_sealed(paths[0].read_bytes())
    keyring.epochs.mark_due()


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
