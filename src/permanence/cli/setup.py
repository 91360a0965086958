"""``permanence init``: the data directory, the master key, the schema, the first administrator."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import fail
from permanence.config import get_settings

if TYPE_CHECKING:
    pass


def init(
    admin_email: Annotated[str, typer.Option(help="E-mail of the first administrator")],
    admin_password: Annotated[
        str | None,
        # Hidden: a password on a command line is shown by 'ps' to every user of the host.
        # Kept for throwaway development databases (dev.py); production uses the variable
        # or the prompt (docs/deployment.md).
        typer.Option(
            help="Password (or set PERMANENCE_ADMIN_PASSWORD)", show_default=False, hidden=True
        ),
    ] = None,
    admin_name: Annotated[str, typer.Option(help="Display name")] = "Administrateur",
) -> None:
    """Create the data directory, the master key, the database and the first administrator."""
    from permanence import schema
    from permanence.context import AccessContext, Role
    from permanence.crypto.masterkey import create_master_key_file
    from permanence.runtime import Runtime
    from permanence.staff.passwords import check_policy
    from permanence.staff.service import create_user

    settings = get_settings()
    password = admin_password or os.environ.get("PERMANENCE_ADMIN_PASSWORD")
    if not password and sys.stdin.isatty():
        # Typed, not on the command line: nothing for 'ps' to show.
        password = typer.prompt(
            "Administrator's password", hide_input=True, confirmation_prompt=True
        )
    if not password:
        fail("set PERMANENCE_ADMIN_PASSWORD (or type the password at the prompt on a terminal)")
    check_policy(password, (admin_email, admin_name))
    from permanence.fsmodes import private_dir

    private_dir(settings.data_dir)
    key_file = settings.effective_master_key_file
    if settings.master_key:
        typer.echo("master key: from PERMANENCE_MASTER_KEY")
    elif settings.master_key_command:
        typer.echo("master key: from PERMANENCE_MASTER_KEY_COMMAND")
    else:
        create_master_key_file(key_file)
        typer.echo(f"master key: {key_file} (mode 0600) - back it up apart from the database")
    schema.upgrade(settings.effective_migration_url, settings.database_app_role)
    typer.echo("database: schema up to date")
    rt = Runtime.from_settings(settings)
    try:
        with rt.db.session(AccessContext.system("cli:init")) as s:
            new = create_user(
                s,
                rt.keyring,
                email=admin_email,
                display_name=admin_name,
                role=Role.ADMIN,
                password=password,
            )
        typer.echo(f"administrator: {new.user.email}")
        typer.echo(f"TOTP enrolment URI (scan it now): {new.totp_uri}")
    finally:
        rt.close()
