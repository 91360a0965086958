"""``permanence breach``: the breach register."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import fail, runtime
from permanence.cli_output import FORMAT_OPTION, Format, emit
from permanence.errors import ValidationFailed

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True, help="The breach register (Art. 33).")


def _parse_when(value: str, name: str) -> object:
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(f"{name} must be an ISO date-time such as 2026-03-06T19:30+01:00")
    if when.tzinfo is None:
        fail(f"{name} needs a UTC offset, e.g. 2026-03-06T19:30+01:00")
    return when


@app.command("open")
def breach_open(
    aware_at: Annotated[str, typer.Option(help="When the provider became aware (ISO, offset)")],
    nature: Annotated[str, typer.Option(help="What happened (no personal data)")] = "",
) -> None:
    """Record a breach at the moment of awareness; prints its reference."""
    import datetime as dt

    from permanence.breaches import service as breaches
    from permanence.context import AccessContext

    when = _parse_when(aware_at, "--aware-at")
    assert isinstance(when, dt.datetime)
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:breach")) as s:
            b = breaches.open_breach(s, aware_at=when, nature=nature)
            typer.echo(b.reference)
    finally:
        rt.close()


@app.command("scope")
def breach_scope(
    reference: str,
    actor_email: Annotated[str, typer.Option(help="The compromised staff account")],
    start: Annotated[str, typer.Option("--from", help="Start of the window (ISO, offset)")],
    end: Annotated[str, typer.Option("--to", help="End of the window (ISO, offset)")],
) -> None:
    """Scope a breach to what one staff account read in a window (from the audit log)."""
    import datetime as dt

    from permanence.breaches import service as breaches
    from permanence.context import AccessContext

    t1, t2 = _parse_when(start, "--from"), _parse_when(end, "--to")
    assert isinstance(t1, dt.datetime) and isinstance(t2, dt.datetime)
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:breach")) as s:
            b = breaches.breach_by_reference(s, reference)
            try:
                actor = breaches.user_by_email(s, actor_email)
            except ValidationFailed as exc:
                fail(exc.message)
            scope = breaches.scope_to_actor(s, b.id, actor_id=actor, start=t1, end=t2)
            typer.echo(
                f"{reference}: {len(scope.subjects)} caller(s) in {len(scope.accounts)} account(s)"
            )
    finally:
        rt.close()


@app.command("notify")
def breach_notify(reference: str) -> None:
    """Notify every affected client of the current phase (portal, and e-mail if configured)."""
    from permanence.breaches import service as breaches
    from permanence.context import AccessContext
    from permanence.mail import mailer_for

    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:breach")) as s:
            b = breaches.breach_by_reference(s, reference)
            sent = breaches.notify_controllers(
                s, b.id, mailer=mailer_for(rt.settings), portal_url=rt.settings.public_base_url
            )
            typer.echo(f"{reference}: {len(sent)} notification(s) sent (phase {b.phase})")
    finally:
        rt.close()


@app.command("list")
def breach_list(fmt: Annotated[Format, FORMAT_OPTION] = Format.text) -> None:
    """The register: one line per breach with its clocks."""
    from permanence.breaches import service as breaches
    from permanence.context import AccessContext
    from permanence.render import paris

    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:breach"), readonly=True) as s:
            views = breaches.register(s)
    finally:
        rt.close()
    if fmt is Format.json:
        emit(
            [
                {
                    "reference": v.reference,
                    "aware_at": v.breach.aware_at,
                    "status": v.breach.status,
                    "decision": v.breach.decision,
                    "phase": v.breach.phase,
                    "accounts": len(v.accounts),
                    "controller_clock": {
                        "state": v.controller_clock.state(v.now),
                        "due_at": v.controller_clock.due_at,
                        "met_at": v.controller_clock.met_at,
                    },
                    "cnil_due_at": v.cnil_clock.due_at,
                    "overdue": v.overdue,
                }
                for v in views
            ]
        )
        return
    if not views:
        typer.echo("no breach registered")
    for v in views:
        typer.echo(
            f"{v.reference}  aware {paris(v.breach.aware_at)}  {v.breach.status}  "
            f"decision {v.breach.decision}  phase {v.breach.phase}  "
            f"accounts {len(v.accounts)}  24h {v.controller_clock.state(v.now)} "
            f"(due {paris(v.controller_clock.due_at)})  CNIL 72h from {paris(v.cnil_clock.due_at)}"
            + ("  OVERDUE" if v.overdue else "")
        )


@app.command("show")
def breach_show(reference: str) -> None:
    """One breach: contents, what is missing, affected accounts and their clocks."""
    from permanence.breaches import service as breaches
    from permanence.context import AccessContext
    from permanence.render import paris

    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:breach"), readonly=True) as s:
            v = breaches.breach_view(s, breaches.breach_by_reference(s, reference).id)
    finally:
        rt.close()
    b = v.breach
    typer.echo(f"{v.reference}: aware {paris(b.aware_at)} (Paris), {b.status}, phase {b.phase}")
    typer.echo(f"decision: {b.decision} {b.not_notified_reason or ''}".rstrip())
    clock = v.controller_clock
    typer.echo(f"controllers told by: {paris(clock.due_at)} ({clock.state(v.now)})")
    typer.echo(f"subjects ~{b.approx_subjects}, records ~{b.approx_records}")
    for m in v.missing:
        typer.echo(f"missing: {m}")
    for a in v.accounts:
        typer.echo(
            f"  {a.slug}: {a.subjects} caller(s), {a.records} record(s), "
            f"told {paris(a.notified_at) or 'not yet'}, CNIL by {paris(a.cnil_clock.due_at)}"
        )


@app.command("export")
def breach_export(
    out: Annotated[Path, typer.Option(help="HTML file to write")],
    reference: Annotated[str | None, typer.Option(help="One breach (default: all)")] = None,
) -> None:
    """The register (or one breach) as an HTML document."""
    from permanence.breaches import service as breaches
    from permanence.context import AccessContext

    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:breach")) as s:
            ids = [breaches.breach_by_reference(s, reference).id] if reference else None
            out.write_text(breaches.export_html(s, ids))
    finally:
        rt.close()
    typer.echo(f"written {out}")
