"""``permanence retention``: retention sweeps and legal holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import account_ctx, fail, runtime
from permanence.cli_output import FORMAT_OPTION, Format, emit, progress

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True, help="Retention periods and legal holds.")


@app.command("run")
def retention_run(
    dry_run: Annotated[bool, typer.Option(help="Count what is due; delete nothing")] = False,
    fmt: Annotated[Format, FORMAT_OPTION] = Format.text,
) -> None:
    """Delete every record past its retention period (not under legal hold); print counts."""
    from permanence.filestore import store_from_settings
    from permanence.retention.service import sweep_exclusive

    rt = runtime()
    try:
        report = sweep_exclusive(
            rt.db,
            store_from_settings(rt.settings),
            dry_run=dry_run,
            batch=rt.settings.retention_batch_size,
            staff_stats_days=rt.settings.staff_stats_retention_days,
            progress=lambda accounts: progress(accounts, len(accounts), "retention sweep"),
        )
    finally:
        rt.close()
    if fmt is Format.json:
        emit(
            {
                "dry_run": report.dry_run,
                "skipped": report.skipped,
                "counts": [
                    {"account": slug, "kind": kind, "rows": n}
                    for (slug, kind), n in sorted(report.counts.items())
                ],
                "held_accounts": report.held_accounts,
                "staff_stats": report.staff_stats,
                "total": report.total,
            }
        )
        return
    for line in report.lines():
        typer.echo(line)


@app.command("hold")
def retention_hold(
    account: Annotated[str, typer.Option(help="Slug of the account")],
    reason: Annotated[str, typer.Option(help="Reason code, e.g. litigation-2026-014")],
    caller: Annotated[str | None, typer.Option(help="Hold one caller (id)")] = None,
    record_kind: Annotated[str | None, typer.Option(help="Hold one record: its kind")] = None,
    record_id: Annotated[str | None, typer.Option(help="Hold one record: its id")] = None,
) -> None:
    """Pause retention for an account, a caller or a record (legal claims, Art. 17(3)(e))."""
    import uuid

    from permanence.retention.service import place_hold

    rt = runtime()
    try:
        ids = [uuid.UUID(v) if v else None for v in (caller, record_id)]
    except ValueError:
        fail("--caller and --record-id must be ids (UUID)")
    try:
        with rt.db.session(account_ctx(rt, account, "retention-hold")) as s:
            hold = place_hold(
                s, reason=reason, caller_id=ids[0], record_kind=record_kind, record_id=ids[1]
            )
    finally:
        rt.close()
    typer.echo(f"hold {hold.id} placed")


@app.command("release")
def retention_release(
    hold_id: Annotated[str, typer.Argument(help="Id of the hold")],
    account: Annotated[str, typer.Option(help="Slug of the account")],
) -> None:
    """Release a legal hold: its records follow their retention periods again."""
    import uuid

    from permanence.retention.service import release_hold

    try:
        hid = uuid.UUID(hold_id)
    except ValueError:
        fail("the hold id must be a UUID")
    rt = runtime()
    try:
        with rt.db.session(account_ctx(rt, account, "retention-hold")) as s:
            release_hold(s, hid)
    finally:
        rt.close()
    typer.echo(f"hold {hid} released")
