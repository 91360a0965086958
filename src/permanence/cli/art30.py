"""``permanence art30``: the records of processing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import fail, runtime

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True, help="Records of processing (Art. 30).")


@app.command("export")
def art30_export(
    fmt: Annotated[str, typer.Option("--format", help="html or csv")] = "html",
    account: Annotated[str | None, typer.Option(help="Only this client's 30(2) record")] = None,
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout)")] = None,
) -> None:
    """The Art. 30 records, generated from the mandates and the configuration."""
    from permanence.accounts.service import account_by_slug
    from permanence.compliance import art30
    from permanence.context import AccessContext

    if fmt not in {"html", "csv"}:
        fail("--format must be html or csv")
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:art30")) as s:
            ids = [account_by_slug(s, account).id] if account else None
            text = art30.export(s, rt.settings, fmt, ids)
    finally:
        rt.close()
    if out:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"written {out}")
    else:
        typer.echo(text, nl=False)
