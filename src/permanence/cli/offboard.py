"""``permanence offboard``: destroy every record of an account that leaves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import fail, runtime

if TYPE_CHECKING:
    pass


def offboard(
    account: Annotated[str, typer.Option(help="Slug of the client account")],
    export_to: Annotated[Path, typer.Option(help="Directory for the export and certificate")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this destroys the data")] = False,
) -> None:
    """Export all of a client's data, destroy it (keys first), and issue a signed certificate."""
    from permanence.accounts.service import account_by_slug
    from permanence.context import AccessContext
    from permanence.contracts import offboarding
    from permanence.rights.service import Outbox

    if not yes:
        fail("off-boarding destroys every record of the account: confirm with --yes")
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:offboard"), readonly=True) as s:
            account_id = account_by_slug(s, account).id
        ctx = AccessContext.system("cli:offboard", account_id)
        with rt.db.session(ctx) as s:
            exported = offboarding.export_account(s, rt.keyring, account_id, export_to)
        typer.echo(f"export: {exported.path} ({sum(exported.records.values())} records)")
        with rt.db.session(ctx) as s:
            cert = offboarding.destroy_account(s, rt.keyring, account_id, export=exported)
        # After the commit: the recordings' and rights packages' files the rows pointed at.
        outbox = Outbox.from_settings(rt.settings)
        stores = {"recordings": outbox.recordings, "files": outbox.files}
        for store, key in cert.files:
            stores[store].delete(key)
    finally:
        rt.close()
    base = export_to / f"{account}-certificate"
    base.with_suffix(".json").write_text(cert.json() + "\n")
    base.with_suffix(".html").write_text(cert.html())
    deleted = sum(cert.document["rows_deleted"].values())
    keys = cert.document["keys_destroyed"]
    typer.echo(
        f"{account}: {keys['subject_keys']} subject key(s) and {keys['account_keys']} account "
        f"key(s) destroyed, {deleted} row(s) deleted; certificate {base}.json / .html"
    )
