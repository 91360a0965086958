"""``permanence routing …``: what the arrival decision does for an account at a given moment,
so an administrator can check a mandate's hours before a holiday or a clock change."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from permanence.mandates.mandate import Mandate

app = typer.Typer(no_args_is_help=True, help="Call routing: opening hours, on call.")


def _moment(text: str | None, zone: dt.tzinfo) -> dt.datetime:
    """``--at`` read as local time in the mandate's zone (or with its own offset)."""
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        typer.echo("error: --at must be a date and time like 2026-12-25T10:00", err=True)
        raise typer.Exit(2) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


@app.command("check")
def check_command(
    account: Annotated[str | None, typer.Option(help="Account slug (its current mandate)")] = None,
    file: Annotated[Path | None, typer.Option(help="A mandate file instead (YAML or JSON)")] = None,
    at: Annotated[
        str | None, typer.Option(help="When a call arrives (local time; default: now)")
    ] = None,
    lang: Annotated[str, typer.Option(help="fr or en")] = "fr",
) -> None:
    """Print the mandate's hours in words and where a call arriving --at goes."""
    from permanence.calls.hours import decide
    from permanence.mandates.errors import MandateInvalid
    from permanence.mandates.hours_words import opening_hours_view
    from permanence.mandates.oncall import mandate_zone
    from permanence.mandates.parsing import parse_mandate

    if (account is None) == (file is None):
        typer.echo("error: give either --account or --file", err=True)
        raise typer.Exit(2)
    mandate: Mandate
    if file is not None:
        try:
            mandate = parse_mandate(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            typer.echo(f"error: cannot read {file} as UTF-8 text", err=True)
            raise typer.Exit(1) from None
        except MandateInvalid as exc:
            for problem in exc.problems:
                typer.echo(f"- {problem}", err=True)
            typer.echo(f"error: {file}: {len(exc.problems)} problem(s)", err=True)
            raise typer.Exit(1) from None
    else:
        mandate = _current_mandate(account or "")
    zone = mandate_zone(mandate)
    moment = _moment(at, zone)
    view = opening_hours_view(mandate, lang)
    if view is None:
        typer.echo(f"{mandate.account}: no opening hours (every call is answered)")
    else:
        for line in view["week"]:
            typer.echo(f"{mandate.account}: {line}")
        typer.echo(f"{mandate.account}: {view['after']}")
    decision = decide(mandate, moment)
    local = moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
    where = f"{local}: {decision.routing} ({decision.reason})"
    if decision.contact is not None and mandate.on_call is not None:
        name = mandate.on_call.contacts[decision.contact].name
        where += f" -> on-call contact {decision.contact} ({name})"
    typer.echo(where)


def _current_mandate(slug: str) -> Mandate:
    from permanence.accounts.service import account_by_slug, mandate_version
    from permanence.config import get_settings
    from permanence.context import AccessContext
    from permanence.errors import NotFound
    from permanence.runtime import Runtime

    rt = Runtime.from_settings(get_settings())
    try:
        with rt.db.session(AccessContext.system("cli:routing-check"), readonly=True) as s:
            try:
                account_id = account_by_slug(s, slug).id
            except NotFound:
                typer.echo(f"error: no account '{slug}'", err=True)
                raise typer.Exit(1) from None
        with rt.db.session(
            AccessContext.system("cli:routing-check", account_id), readonly=True
        ) as s:
            try:
                _row, mandate = mandate_version(s, account_id)
            except NotFound:
                typer.echo(f"error: account '{slug}' has no mandate", err=True)
                raise typer.Exit(1) from None
    finally:
        rt.close()
    return mandate
