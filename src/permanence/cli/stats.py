"""``permanence stats``: statistics and usage reports."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import fail, runtime
from permanence.cli_output import emit
from permanence.errors import PermanenceError

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True, help="Statistics and usage reports.")


@app.command("purge")
def stats_purge(
    dry_run: Annotated[bool, typer.Option(help="Count what is due; delete nothing")] = False,
) -> None:
    """Delete per-operator statistics older than PERMANENCE_STAFF_STATS_RETENTION_DAYS (the
    retention sweep does it too)."""
    from permanence.context import AccessContext
    from permanence.stats.service import count_staff_stats_due, purge_staff_stats

    rt = runtime()
    days = rt.settings.staff_stats_retention_days
    try:
        with rt.db.session(AccessContext.system("retention"), readonly=dry_run) as s:
            fn = count_staff_stats_due if dry_run else purge_staff_stats
            n = fn(s, days)
    finally:
        rt.close()
    typer.echo(
        f"staff statistics older than {days} days: {n} operator-days "
        + ("due" if dry_run else "deleted")
    )


@app.command("rebuild")
def stats_rebuild(
    account: Annotated[
        str | None, typer.Option(help="Slug of the account (default: every account)")
    ] = None,
) -> None:
    """Recompute the account figures' hourly aggregates from the rows (ADR 0032): after rows
    were written outside the application's sessions (raw SQL, a restore of part of a table)."""
    from sqlalchemy import select

    from permanence.accounts.model import Account
    from permanence.accounts.service import account_by_slug
    from permanence.context import AccessContext
    from permanence.stats import aggregates

    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:stats"), readonly=True) as s:
            if account is not None:
                ids = [account_by_slug(s, account).id]
            else:
                ids = list(s.scalars(select(Account.id).order_by(Account.slug)))
        hours = 0
        for account_id in ids:
            with rt.db.session(AccessContext.system("cli:stats", account_id)) as s:
                hours += aggregates.rebuild(s, account_id)
    except PermanenceError as exc:
        fail(exc.message)
    finally:
        rt.close()
    typer.echo(f"statistics rebuilt: {len(ids)} accounts, {hours} hourly rows")


@app.command("usage")
def stats_usage(
    account: Annotated[str, typer.Option(help="Slug of the account")],
    month: Annotated[str, typer.Option(help="Month, YYYY-MM")],
    fmt: Annotated[str, typer.Option("--format", help="csv, json or pdf")] = "csv",
    out: Annotated[
        Path | None, typer.Option(help="Write here (default: standard output, CSV)")
    ] = None,
) -> None:
    """The usage report of one account for one month (the basis of the invoice)."""
    from permanence.accounts.service import account_by_slug
    from permanence.context import AccessContext
    from permanence.stats import usage

    if fmt not in ("csv", "json", "pdf"):
        fail("--format must be csv, json or pdf")
    if fmt == "pdf" and out is None:
        fail("a PDF needs --out FILE")
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:usage"), readonly=True) as s:
            account_id = account_by_slug(s, account).id
        with rt.db.session(AccessContext.system("cli:usage", account_id), readonly=True) as s:
            report = usage.usage_report(s, account_id, month)
    except PermanenceError as exc:
        fail(exc.message)
    finally:
        rt.close()
    if fmt == "json":
        if out is not None:
            fail("--format json writes to standard output: leave out --out")
        emit(report.as_dict())
    elif fmt == "pdf":
        assert out is not None
        out.write_bytes(usage.to_pdf(report, rt.settings.provider_name))
        typer.echo(f"usage report written to {out}")
    elif out is not None:
        out.write_text(usage.to_csv(report), encoding="utf-8")
        typer.echo(f"usage report written to {out}")
    else:
        typer.echo(usage.to_csv(report), nl=False)
