"""``permanence pii``: personal data in free text."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True, help="Personal data in free text.")


@app.command("scan")
def pii_scan(
    mask: Annotated[bool, typer.Option("--mask", help="Print the masked text instead")] = False,
    types: Annotated[str | None, typer.Option(help="Comma-separated types (default: all)")] = None,
) -> None:
    """Read text from stdin, one document per line; print JSON lines of the entities found."""
    from permanence.pii import ALL_TYPES, scan_lines

    chosen = [t.strip().upper() for t in types.split(",")] if types else None
    if chosen is not None and (bad := set(chosen) - set(ALL_TYPES)):
        typer.echo(
            f"error: unknown type(s) {', '.join(sorted(bad))}; known: {', '.join(ALL_TYPES)}",
            err=True,
        )
        raise typer.Exit(2)
    scan_lines(sys.stdin, sys.stdout, mask, chosen)
