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
erased caller stays erased, and every journalled off-boarding
(``contracts.offboarding.replay_offboarding``), so an off-boarded client stays off-boarded. The
caller hands those two steps in (``ReplaySteps``; ``rights.journal.JOURNAL_STEPS``): the journal
sits below the features that write it (ADR 0038).

This module is the feature's one entry for the commands; the stages live in ``base``
(shared), ``make``, ``restore`` and ``replay``.
"""

from permanence.backup.base import FILE_STORES, FORMAT, VERSION, Report
from permanence.backup.make import BackupSummary, make_backup
from permanence.backup.replay import ReplayStep, ReplaySteps, replay, replay_journal
from permanence.backup.restore import (
    RestoreSummary,
    Staged,
    check_archive,
    restore,
    stage,
    unrecognised_files,
)

__all__ = [
    "FILE_STORES",
    "FORMAT",
    "VERSION",
    "BackupSummary",
    "ReplayStep",
    "ReplaySteps",
    "Report",
    "RestoreSummary",
    "Staged",
    "check_archive",
    "make_backup",
    "replay",
    "replay_journal",
    "restore",
    "stage",
    "unrecognised_files",
]
