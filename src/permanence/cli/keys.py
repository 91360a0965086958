"""``permanence keys``: encryption keys."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import fail, runtime
from permanence.cli_output import progress
from permanence.errors import PermanenceError

if TYPE_CHECKING:
    pass

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
