"""``permanence mandate``: client mandates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import fail, read_text, runtime
from permanence.config import get_settings

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True, help="Client mandates (documented instructions).")


@app.command("validate")
def mandate_validate(path: Path) -> None:
    """Check a mandate file; print every problem."""
    from permanence.mandates.errors import MandateInvalid
    from permanence.mandates.layer2 import external_layer2, first_layer_problems
    from permanence.mandates.parsing import parse_mandate

    try:
        m = parse_mandate(read_text(path))
        if problems := first_layer_problems(m):
            raise MandateInvalid(problems)
    except MandateInvalid as exc:
        for p in exc.problems:
            typer.echo(f"- {p}", err=True)
        fail(f"{path}: {len(exc.problems)} problem(s)")
    if external_layer2(m, get_settings().public_base_url):
        typer.echo(
            f"warning: notice.layer2_url points outside this service ({m.notice.layer2_url}): "
            "the product cannot check that page; leave it out to use the generated notice",
            err=True,
        )
    typer.echo(f"{path}: valid mandate for '{m.account}' with {len(m.purposes)} purpose(s)")


@app.command("import")
def mandate_import(path: Path, account: Annotated[str, typer.Option(help="Account slug")]) -> None:
    """Store a file as the account's next mandate version."""
    from permanence.accounts.service import account_by_slug, import_mandate
    from permanence.context import AccessContext

    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:mandate-import"), readonly=True) as s:
            account_id = account_by_slug(s, account).id
        with rt.db.session(AccessContext.system("cli:mandate-import", account_id)) as s:
            row = import_mandate(s, read_text(path), account_id=account_id)
            typer.echo(f"{account}: mandate version {row.version} stored")
    finally:
        rt.close()


@app.command("export")
def mandate_export(
    account: Annotated[str, typer.Option(help="Account slug")],
    version: Annotated[int | None, typer.Option(help="Version (default: current)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="yaml or json")] = "yaml",
) -> None:
    """Print a mandate version."""
    from permanence.accounts.service import account_by_slug, export_mandate
    from permanence.context import AccessContext

    if fmt not in {"yaml", "json"}:
        fail("--format must be yaml or json")
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:mandate-export"), readonly=True) as s:
            account_id = account_by_slug(s, account).id
        with rt.db.session(
            AccessContext.system("cli:mandate-export", account_id), readonly=True
        ) as s:
            typer.echo(
                export_mandate(s, account_id, version, "json" if fmt == "json" else "yaml"),
                nl=False,
            )
    finally:
        rt.close()
