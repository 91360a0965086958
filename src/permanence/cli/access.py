"""``permanence access …``: operator assignments and the per-account access list (the DPO's
periodic access review)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import typer

from permanence.cli.common import fail, runtime

app = typer.Typer(
    no_args_is_help=True,
    help="Need-to-know for health data: assign operators to accounts, export the access list.",
)


def _ids(account: str, email: str | None) -> tuple[uuid.UUID, uuid.UUID | None]:
    from sqlalchemy import select

    from permanence.accounts.service import account_by_slug
    from permanence.context import AccessContext
    from permanence.errors import NotFound
    from permanence.staff.model import User

    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:access"), readonly=True) as s:
            try:
                account_id = account_by_slug(s, account).id
            except NotFound:
                fail(f"no client account '{account}'")
            user_id = None
            if email is not None:
                user_id = s.scalars(
                    select(User.id).where(User.email == email.strip().lower())
                ).first()
                if user_id is None:
                    fail("no staff member with this e-mail address")
    finally:
        rt.close()
    return account_id, user_id


def _run(account: str, email: str | None, action: str) -> None:

    from permanence.context import AccessContext
    from permanence.errors import PermanenceError
    from permanence.needtoknow import service as needtoknow

    account_id, user_id = _ids(account, email)
    assert user_id is not None
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:access", account_id)) as s:
            if action == "assign":
                needtoknow.assign(s, user_id)
            else:
                needtoknow.unassign(s, user_id)
    except PermanenceError as exc:
        fail(exc.message)
    finally:
        rt.close()
    typer.echo(f"{account}: operator {user_id} {action}ed")


@app.command("assign")
def assign(
    account: Annotated[str, typer.Option(help="Slug of the client account")],
    email: Annotated[str, typer.Option(help="The operator's e-mail address")],
) -> None:
    """Assign an operator to the account they serve."""
    _run(account, email, "assign")


@app.command("unassign")
def unassign(
    account: Annotated[str, typer.Option(help="Slug of the client account")],
    email: Annotated[str, typer.Option(help="The operator's e-mail address")],
) -> None:
    """End an operator's assignment (kept in the access list with its end date)."""
    _run(account, email, "unassign")


@app.command("list")
def access_list(
    account: Annotated[str, typer.Option(help="Slug of the client account")],
    out: Annotated[Path | None, typer.Option(help="Write the CSV here")] = None,
) -> None:
    """Who can open the account's data (CSV): assignments with their dates and break-glass
    counts, then the roles that reach every account."""

    from permanence.context import AccessContext
    from permanence.needtoknow import service as needtoknow

    account_id, _ = _ids(account, None)
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:access", account_id), readonly=True) as s:
            text = needtoknow.access_csv(needtoknow.access_list(s))
    finally:
        rt.close()
    if out is not None:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"written {out}")
    else:
        typer.echo(text, nl=False)
