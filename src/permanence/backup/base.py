"""What backing up and restoring share: the archive's format, the file stores, progress
reports, the database's backend and quoting."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from permanence.config import Settings
from permanence.errors import ValidationFailed

FORMAT = "permanence-backup"
VERSION = 1
FILE_STORES = ("recordings", "rights", "training")
EPOCH_ENTRY = "keys/epochs"  # the erasure-epoch key file at the snapshot (ADR 0029)
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
