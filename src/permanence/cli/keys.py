"""``permanence keys``: encryption keys."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import fail, runtime
from permanence.cli_output import progress
from permanence.errors import PermanenceError

if TYPE_CHECKING:
    from permanence.runtime import Runtime

app = typer.Typer(no_args_is_help=True, help="Encryption keys.")


@app.command("rotate")
def keys_rotate(
    account: Annotated[
        str | None, typer.Option(help="Slug of one account (default: every account)")
    ] = None,
) -> None:
    """New key-encryption key per account; data keys re-wrapped, data untouched."""
    from permanence.accounts.service import account_by_slug, list_accounts
    from permanence.audit import service as audit
    from permanence.context import AccessContext

    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:keys-rotate"), readonly=True) as s:
            accounts = [account_by_slug(s, account)] if account else list_accounts(s)
            targets = [(a.id, a.slug) for a in accounts]
        for account_id, slug in progress(targets, len(targets), "key rotation"):
            ctx = AccessContext.system("cli:keys-rotate", account_id=account_id)
            with rt.db.session(ctx) as s:
                version, count = rt.keyring.rotate_account(s, account_id)
                audit.record(
                    s,
                    "keys.rotate",
                    "account",
                    account_id,
                    details={"version": version, "rewrapped": count},
                )
            typer.echo(f"{slug}: key version {version}, {count} data keys re-wrapped")
    finally:
        rt.close()


@app.command("rotate-epoch")
def keys_rotate_epoch(
    if_due: Annotated[
        bool,
        typer.Option(
            "--if-due",
            help="Only when an erasure or the schedule makes it due (what 'serve' does)",
        ),
    ] = False,
) -> None:
    """New erasure epoch: every data key re-wrapped under it, the old epoch key destroyed, so
    that what erased callers left in the database's files opens no more (ADR 0029)."""
    import permanence.models  # noqa: F401  (every table known: the keys' foreign keys resolve)

    rt = runtime()
    try:
        settings = rt.settings
        if if_due:
            reason = rt.keyring.epoch_rotation_due(
                rt.db,
                settings.erasure_epoch_delay_minutes * 60.0,
                settings.erasure_epoch_days * 86400.0,
            )
            if reason is None:
                typer.echo("no erasure-epoch rotation due")
                return
        else:
            reason = "manual"
        done = rt.keyring.rotate_epoch(rt.db)
        record_epoch_rotation(rt, "cli:keys-rotate-epoch", reason, done)
    except PermanenceError as exc:
        fail(exc.message)
    finally:
        rt.close()
    typer.echo(
        f"erasure epoch {done['epoch']}: {done['rewrapped']} data keys re-wrapped, "
        f"{done['destroyed']} old epoch key(s) destroyed"
    )


def record_epoch_rotation(rt: Runtime, why: str, reason: str, done: dict[str, int]) -> None:
    """The rotation in the audit log (numbers only)."""
    from permanence.audit import service as audit
    from permanence.context import AccessContext

    with rt.db.session(AccessContext.system(why)) as s:
        audit.record(
            s,
            "keys.epoch_rotate",
            "key_epoch",
            str(done["epoch"]),
            details={"reason": reason, **done},
        )


@app.command("backup-key")
def keys_backup_key(
    path: Annotated[Path, typer.Argument(help="File to create (mode 0600)")],
) -> None:
    """Make a new backup key file; point PERMANENCE_BACKUP_KEY_FILE at it. Keep it away from
    the backups and from the master key (docs/backup.md)."""
    from permanence.backup import archive

    try:
        kid = archive.create_key_file(path)
    except PermanenceError as exc:
        fail(exc.message)
    typer.echo(f"backup key written to {path} (mode 0600), key id {kid}")
