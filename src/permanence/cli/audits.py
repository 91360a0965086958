"""``permanence audits``: record audits of the service and of sub-processors, list them, close
their follow-up actions."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

import typer

from permanence.cli.common import runtime
from permanence.context import AccessContext
from permanence.errors import ValidationFailed

app = typer.Typer(
    no_args_is_help=True, help="Audits of the service and of sub-processors (Art. 28(3)(h))."
)


def _date(value: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"{name}: expected a date YYYY-MM-DD") from None


def _action(value: str) -> object:
    from permanence.audits.service import NewAction

    parts = value.split("|")
    if len(parts) != 3:
        raise ValidationFailed("--action: expected 'WHAT|OWNER-EMAIL|YYYY-MM-DD'")
    return NewAction(parts[0], parts[1], _date(parts[2].strip(), "--action due date"))


@app.command("record")
def record(
    target: Annotated[str, typer.Option(help="'service', or the code of a sub-processor")],
    date: Annotated[str, typer.Option("--date", help="When the audit was done (YYYY-MM-DD)")],
    scope: Annotated[str, typer.Option(help="What was audited")],
    findings: Annotated[str, typer.Option(help="What the audit found")],
    next_due: Annotated[str, typer.Option(help="When the next audit is due (YYYY-MM-DD)")],
    action: Annotated[
        list[str] | None,
        typer.Option(help="A follow-up action 'WHAT|OWNER-EMAIL|YYYY-MM-DD' (repeatable)"),
    ] = None,
) -> None:
    """Record an audit with its findings, follow-up actions and the next audit's due date."""
    from permanence.audits import service as audits

    actions = [_action(a) for a in action or []]
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:audits")) as s:
            row = audits.record_audit(
                s,
                target=target,
                performed_on=_date(date, "--date"),
                scope=scope,
                findings=findings,
                next_due_on=_date(next_due, "--next-due"),
                actions=actions,  # type: ignore[arg-type]
            )
            typer.echo(f"audit {row.id} recorded ({len(actions)} follow-up action(s))")
    finally:
        rt.close()


@app.command("list")
def list_audits() -> None:
    """Every audit, newest first, with its actions and what is overdue."""
    from permanence.audits import service as audits
    from permanence.render import paris_date

    rt = runtime()
    today = paris_date(dt.datetime.now(dt.UTC))
    try:
        with rt.db.session(AccessContext.system("cli:audits"), readonly=True) as s:
            views = audits.history(s)
            for v in views:
                late = " OVERDUE" if v.overdue(today) else ""
                typer.echo(
                    f"{v.audit.performed_on} {v.target}: next due {v.audit.next_due_on}{late}"
                    f" ({v.audit.id})"
                )
                for a in v.actions:
                    typer.echo(
                        f"  - [{a.state(today)}] {a.action.action} (owner {a.owner_name}, "
                        f"due {a.action.due_on}) {a.action.id}"
                    )
    finally:
        rt.close()
    if not views:
        typer.echo("no audit recorded")


@app.command("done")
def done(action_id: str) -> None:
    """Mark a follow-up action as done."""
    from permanence.audits import service as audits

    try:
        ident = uuid.UUID(action_id)
    except ValueError:
        raise ValidationFailed("ACTION_ID: expected the action's id (see 'audits list')") from None
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:audits")) as s:
            audits.complete_action(s, ident)
    finally:
        rt.close()
    typer.echo(f"action {ident} done")
