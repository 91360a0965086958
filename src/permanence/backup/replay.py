"""Replaying the erasure journal after a restore (ADR 0008): everyone erased, and every account
off-boarded, since the backup stays so.

The journal sits below the two features that write it (ADR 0038): carrying an entry out again
is theirs, a subject's erasure (``rights.erasure``) and an account's off-boarding
(``contracts.offboarding.replay_offboarding``). The caller hands both in (``ReplaySteps``;
``rights.journal.JOURNAL_STEPS`` is the deployment's pair), so this module imports neither."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, pool, text
from sqlalchemy.orm import Session

from permanence.backup import journal as ejournal
from permanence.backup.base import _NOT_DATA, FILE_STORES, Report, _any_sql, _quiet, _store_dir
from permanence.backup.journal import JournalEntry
from permanence.backup.make import _sqlite_path
from permanence.config import Settings
from permanence.crypto.keyring import Keyring

# One journal entry carried out again on the restored database, in the caller's transaction:
# whether it changed anything, and the files the deleted rows pointed at, as (store, key),
# which the replay deletes after the commit. Running it twice changes nothing the second time.
ReplayStep = Callable[[Session, Keyring, JournalEntry], tuple[bool, Sequence[tuple[str, str]]]]


@dataclass(frozen=True)
class ReplaySteps:
    """Who carries out again each kind of journal entry: ``subject``, a subject's erasure;
    ``account``, an account's off-boarding. Handed in by the features that write them."""

    subject: ReplayStep
    account: ReplayStep


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


def replay_journal(
    settings: Settings,
    journal_files: list[Path] | None = None,
    report: Report = _quiet,
    *,
    steps: ReplaySteps,
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
        steps=steps,
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
    steps: ReplaySteps,
    action: str,
    details: dict[str, str | int],
    report: Report = _quiet,
) -> tuple[int, int]:
    """Record the restore (``action``) in the audit log, then replay every journalled erasure
    and off-boarding in time order (``steps``), one transaction per account; files are deleted
    after each commit. Returns (replayed, entries whose account is not in the database)."""
    from sqlalchemy import select

    from permanence.accounts.model import Account
    from permanence.audit import service as audit
    from permanence.context import AccessContext
    from permanence.filestore import LocalStore, store_from_settings
    from permanence.runtime import Runtime

    rt = Runtime(settings, _database(settings), keyring)
    rt.db.erasure_mirror = None  # entries come from the journal: not written to it again here
    stores = {
        "recordings": store_from_settings(settings),  # files, or rows (ADR 0036)
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
        total, step = sum(len(b) for b in by_account.values()), 0
        report("erasure journal replay", 0, total)
        for account_id, batch in by_account.items():
            files: list[tuple[str, str]] = []
            with rt.db.session(AccessContext.system("backup:restore", account_id)) as s:
                for e in batch:
                    step += 1
                    report("erasure journal replay", step, total)
                    carry_out = steps.account if e.is_account else steps.subject
                    changed, freed = carry_out(s, keyring, e)
                    replayed += changed
                    files += freed
            for store, key in files:
                stores[store].delete(key)
        return replayed, absent
    finally:
        rt.close()


def _database(settings: Settings) -> Any:
    from permanence.db import Database

    return Database(settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous)
