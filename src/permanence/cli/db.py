"""``permanence db``: the database schema."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from permanence.config import get_settings

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True, help="Database schema.")


@app.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations (and, on PostgreSQL, the application role's grants)."""
    from permanence import schema
    from permanence.fsmodes import private_dir, private_sqlite

    settings = get_settings()
    private_dir(settings.data_dir)
    private_sqlite(settings.effective_migration_url)
    schema.upgrade(settings.effective_migration_url, settings.database_app_role)
    typer.echo(f"schema at revision {schema.current_revision(settings.effective_migration_url)}")


@app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("-m", "--message", help="What the revision does")],
    rev_id: Annotated[str | None, typer.Option(help="Revision id, e.g. 0007")] = None,
) -> None:
    """(Developers) autogenerate a migration from the models; review it before committing."""
    from permanence import schema

    for path in schema.new_revision(message, rev_id):
        typer.echo(f"written {path}: review it, and list new account-owned tables in TENANT_TABLES")
