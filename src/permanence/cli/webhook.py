"""``permanence webhook``: webhooks to clients' systems."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import runtime

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True, help="Webhooks to clients' systems.")


@app.command("secret")
def webhook_secret(
    account: Annotated[str, typer.Option(help="Account slug")],
    name: Annotated[str, typer.Option(help="The mandate's secret_ref, e.g. env:CRM_SECRET")],
) -> None:
    """Create or rotate a webhook signing secret; prints it once (the previous one keeps
    signing for 24 hours alongside)."""
    from permanence.accounts.service import account_by_slug
    from permanence.context import AccessContext
    from permanence.delivery.webhook_secrets import set_webhook_secret

    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:webhook-secret"), readonly=True) as s:
            account_id = account_by_slug(s, account).id
        with rt.db.session(AccessContext.system("cli:webhook-secret", account_id)) as s:
            secret, version = set_webhook_secret(s, rt.keyring, name)
    finally:
        rt.close()
    typer.echo(f"{account}: webhook secret {name} version {version} (shown once, store it now)")
    typer.echo(secret)
