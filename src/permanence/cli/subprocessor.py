"""``permanence subprocessor …``: the sub-processor register from the command line, with the
outside services the configuration uses (contracts/configured.py) beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from permanence.cli.common import fail, runtime

app = typer.Typer(
    no_args_is_help=True,
    help="The sub-processor register (Art. 28(2)/(4)) and the services the configuration uses.",
)


@app.command("list")
def list_subprocessors() -> None:
    """The register (status, country, transfer tool, host), then each configured outside
    service and the entry that covers it."""
    from permanence.context import AccessContext
    from permanence.contracts.configured import configured_services
    from permanence.contracts.service import registry

    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:subprocessors"), readonly=True) as s:
            entries = registry(s)
            services = configured_services(s, rt.settings)
            for sp in entries:
                typer.echo(
                    f"{sp.code}  {sp.status}  {sp.country}  {sp.safeguard}  "
                    f"host {sp.host or '-'}  {sp.service}"
                )
            if not entries:
                typer.echo("no sub-processor registered")
            for c in services:
                covered = c.entry.code if c.entry is not None else "NOT REGISTERED"
                typer.echo(f"configured {c.kind}: {c.host} ({c.country or '??'}) -> {covered}")
    finally:
        rt.close()


@app.command("propose")
def propose(
    code: Annotated[str, typer.Option(help="Short code, e.g. twilio")],
    name: Annotated[str, typer.Option(help="Legal name of the sub-processor")],
    service: Annotated[str, typer.Option(help="What it does for us (French)")],
    country: Annotated[str, typer.Option(help="Two-letter country of the processing entity")],
    safeguard: Annotated[
        str, typer.Option(help="Chapter V tool outside the EEA, e.g. standard_contractual_clauses")
    ] = "eea",
    host: Annotated[
        str | None, typer.Option(help="Host or domain the configuration reaches it by")
    ] = None,
    hds: Annotated[bool, typer.Option(help="HDS-certified host")] = False,
    window_days: Annotated[int, typer.Option(help="Objection window in days")] = 30,
) -> None:
    """Announce a new sub-processor to every active client (portal and e-mail): it takes
    effect after the objection window ('subprocessor apply')."""
    import datetime as dt

    from permanence.context import AccessContext
    from permanence.contracts import service as contracts
    from permanence.mail import mailer_for

    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:subprocessors")) as s:
            change = contracts.propose_subprocessor(
                s,
                code=code,
                name=name,
                service=service,
                country=country,
                safeguard=safeguard,
                hds_certified=hds,
                host=host,
                mailer=mailer_for(rt.settings),
                portal_url=rt.settings.public_base_url,
                window=dt.timedelta(days=window_days),
            )
            typer.echo(f"{code}: announced, takes effect {change.effective_at.isoformat()}")
    finally:
        rt.close()


@app.command("apply")
def apply_changes() -> None:
    """Make the announced changes whose objection window closed take effect (cron)."""
    from permanence.context import AccessContext
    from permanence.contracts import service as contracts

    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:subprocessors")) as s:
            applied = contracts.apply_due_changes(s)
            for a in applied:
                typer.echo(
                    f"{a.subprocessor.code}: {a.change.kind} in effect, {a.objections} objection(s)"
                )
            if not applied:
                typer.echo("no change due")
    finally:
        rt.close()


@app.command("flowdown")
def flowdown(
    code: Annotated[str, typer.Option(help="The sub-processor's code")],
    reference: Annotated[str, typer.Option(help="Reference of its data-processing agreement")],
    signed_on: Annotated[str, typer.Option(help="Date it was signed, YYYY-MM-DD")],
    covers: Annotated[
        str, typer.Option(help="Art. 28(3) points it imposes, e.g. abcdefgh")
    ] = "abcdefgh",
    document: Annotated[
        Path | None, typer.Option(help="The signed agreement (its SHA-256 is recorded)")
    ] = None,
) -> None:
    """Record the flow-down agreement binding a sub-processor to the same obligations
    (Art. 28(4); clause 7.7(b) of the SCC)."""
    import datetime as dt

    from permanence.context import AccessContext
    from permanence.contracts import flowdown as subcontracting
    from permanence.errors import PermanenceError

    try:
        day = dt.date.fromisoformat(signed_on)
    except ValueError:
        fail("--signed-on must be a date YYYY-MM-DD")
    data = document.read_bytes() if document is not None else None
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:subprocessors")) as s:
            subcontracting.record_flowdown(
                s,
                code,
                reference=reference,
                signed_at=dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC),
                covers=list(covers.replace(",", "").strip()),
                document=data,
            )
    except PermanenceError as exc:
        fail(exc.message)
    finally:
        rt.close()
    typer.echo(f"{code}: flow-down agreement {reference} recorded")


@app.command("resolve")
def resolve(
    account: Annotated[str, typer.Option(help="Slug of the objecting client account")],
    change: Annotated[str, typer.Option(help="Id of the announced change")],
    resolution: Annotated[str, typer.Option(help="withdrawn | alternative | terminated")],
) -> None:
    """Resolve a client's objection to a change (clause 7.7(a) of the SCC): the change was
    held for that client until now."""
    import uuid

    from permanence.accounts.service import account_by_slug
    from permanence.context import AccessContext
    from permanence.contracts import flowdown as subcontracting
    from permanence.errors import PermanenceError

    try:
        change_id = uuid.UUID(change)
    except ValueError:
        fail("--change must be the id of an announced change")
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:subprocessors"), readonly=True) as s:
            account_id = account_by_slug(s, account).id
        with rt.db.session(AccessContext.system("cli:subprocessors", account_id)) as s:
            subcontracting.resolve_objection(s, change_id, resolution)
    except PermanenceError as exc:
        fail(exc.message)
    finally:
        rt.close()
    typer.echo(f"{account}: objection resolved ({resolution})")
