"""``permanence backup`` and ``permanence restore`` (docs/backup.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import dated, fail
from permanence.cli_output import progress_report
from permanence.config import get_settings
from permanence.errors import PermanenceError

if TYPE_CHECKING:
    pass


def backup(
    out: Annotated[
        Path,
        typer.Argument(
            help="Archive to write (refuses to overwrite a file); a directory: a dated "
            "permanence-YYYYMMDDTHHMMSSZ.pmbk in it (the backup timer)"
        ),
    ],
) -> None:
    """A consistent, encrypted backup of the database and its files, while the service runs.

    Encrypted under the backup key (PERMANENCE_BACKUP_KEY_FILE or PERMANENCE_BACKUP_KEY), not
    the master key; the master key is not in the archive (docs/backup.md)."""
    from permanence.backup import archive
    from permanence.backup import service as backups

    out = dated(out, "permanence", ".pmbk")
    settings = get_settings()
    try:
        key = archive.load_backup_key(settings)
        with progress_report() as report:
            summary = backups.make_backup(settings, out, key, report)
    except PermanenceError as exc:
        fail(exc.message)
    typer.echo(summary.line())


def restore(
    source: Annotated[Path, typer.Argument(help="Archive made by 'permanence backup'")],
    force: Annotated[
        bool, typer.Option(help="Replace a target database or data directory that holds data")
    ] = False,
    journal: Annotated[
        list[Path] | None,
        typer.Option(help="Erasure journal export(s) to replay too ('rights journal-export')"),
    ] = None,
    check: Annotated[
        bool, typer.Option(help="Only decrypt and check the archive; change nothing")
    ] = False,
    no_erasure_since: Annotated[
        bool,
        typer.Option(
            "--no-erasure-since",
            help="No journal covers the time since the backup, and no one was erased since: "
            "restore anyway (recorded in the audit log)",
        ),
    ] = False,
) -> None:
    """Restore a backup into the configured database and data directory (stop the service
    first), bring the schema up to date, then replay the erasure journal so that everyone
    erased since the backup stays erased."""
    from permanence.backup import archive
    from permanence.backup import service as backups
    from permanence.rights.journal import JOURNAL_STEPS

    settings = get_settings()
    try:
        key = archive.load_backup_key(settings)
        if check:
            manifest = backups.check_archive(settings, source, key)
            rows = sum(int(t["rows"]) for t in manifest["tables"].values())
            typer.echo(
                f"archive intact: backup of {manifest['created_at']} ({manifest['backend']}, "
                f"revision {manifest['revision']}), {len(manifest['tables'])} tables, {rows} "
                f"rows, {len(manifest['entries'])} entries"
            )
            return
        with progress_report() as report:
            summary = backups.restore(
                settings,
                source,
                key,
                force=force,
                journal_files=journal,
                no_erasure_since=no_erasure_since,
                report=report,
                steps=JOURNAL_STEPS,
            )
    except PermanenceError as exc:
        fail(exc.message)
    typer.echo(summary.line())
