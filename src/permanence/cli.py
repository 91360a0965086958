"""The command line: ``permanence …``. Every command is scriptable (flags, no prompts) and
fails with one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from permanence.config import Settings, get_settings
from permanence.errors import PermanenceError, ValidationFailed

if TYPE_CHECKING:
    from permanence.runtime import Runtime

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Permanence: a GDPR-compliant telephone answering service.",
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
keys_app = typer.Typer(no_args_is_help=True, help="Encryption keys.")
audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log.")
mandate_app = typer.Typer(no_args_is_help=True, help="Client mandates (documented instructions).")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(mandate_app, name="mandate")
pii_app = typer.Typer(no_args_is_help=True, help="Personal data in free text.")
app.add_typer(pii_app, name="pii")
deliveries_app = typer.Typer(no_args_is_help=True, help="Delivery of messages to clients.")
app.add_typer(deliveries_app, name="deliveries")
webhook_app = typer.Typer(no_args_is_help=True, help="Webhooks to clients' systems.")
app.add_typer(webhook_app, name="webhook")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _runtime() -> Runtime:
    from permanence.runtime import Runtime

    return Runtime.from_settings(get_settings())


@app.command()
def init(
    admin_email: Annotated[str, typer.Option(help="E-mail of the first administrator")],
    admin_password: Annotated[
        str | None,
        typer.Option(help="Password (or set PERMANENCE_ADMIN_PASSWORD)", show_default=False),
    ] = None,
    admin_name: Annotated[str, typer.Option(help="Display name")] = "Administrateur",
) -> None:
    """Create the data directory, the master key, the database and the first administrator."""
    from permanence import schema
    from permanence.context import AccessContext, Role
    from permanence.crypto.keyring import create_master_key_file
    from permanence.runtime import Runtime
    from permanence.staff.passwords import check_policy
    from permanence.staff.service import create_user

    settings = get_settings()
    password = admin_password or os.environ.get("PERMANENCE_ADMIN_PASSWORD")
    if not password:
        fail("give --admin-password or set PERMANENCE_ADMIN_PASSWORD")
    check_policy(password)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    key_file = settings.effective_master_key_file
    if settings.master_key:
        typer.echo("master key: from PERMANENCE_MASTER_KEY")
    else:
        create_master_key_file(key_file)
        typer.echo(f"master key: {key_file} (mode 0600) - back it up apart from the database")
    schema.upgrade(settings.effective_migration_url, settings.database_app_role)
    typer.echo("database: schema up to date")
    rt = Runtime.from_settings(settings)
    try:
        with rt.db.session(AccessContext.system("cli:init")) as s:
            new = create_user(
                s,
                rt.keyring,
                email=admin_email,
                display_name=admin_name,
                role=Role.ADMIN,
                password=password,
            )
        typer.echo(f"administrator: {new.user.email}")
        typer.echo(f"TOTP enrolment URI (scan it now): {new.totp_uri}")
    finally:
        rt.close()


@app.command()
def demo() -> None:
    """Load realistic French demo data (three client accounts, staff, callers, calls…)."""
    from permanence.demo.loader import load_demo

    rt = _runtime()
    try:
        summary = load_demo(rt)
    finally:
        rt.close()
    for line in summary:
        typer.echo(line)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
) -> None:
    """Run the web service."""
    import uvicorn

    from permanence.logs import configure_logging
    from permanence.web.app import create_app

    settings = get_settings()
    configure_logging(settings.log_level)
    rt = _runtime()
    # log_config=None: uvicorn's records go through our (redacting) root handler.
    uvicorn.run(
        create_app(rt, deliveries=True), host=host, port=port, log_config=None, proxy_headers=True
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations (and, on PostgreSQL, the application role's grants)."""
    from permanence import schema

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    schema.upgrade(settings.effective_migration_url, settings.database_app_role)
    typer.echo(f"schema at revision {schema.current_revision(settings.effective_migration_url)}")


@db_app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("-m", "--message", help="What the revision does")],
    rev_id: Annotated[str | None, typer.Option(help="Revision id, e.g. 0007")] = None,
) -> None:
    """(Developers) autogenerate a migration from the models; review it before committing."""
    from permanence import schema

    for path in schema.new_revision(message, rev_id):
        typer.echo(f"written {path}: review it, and list new account-owned tables in TENANT_TABLES")


@keys_app.command("rotate")
def keys_rotate(
    account: Annotated[
        str | None, typer.Option(help="Slug of one account (default: every account)")
    ] = None,
) -> None:
    """New key-encryption key per account; data keys re-wrapped, data untouched."""
    from permanence.accounts.service import account_by_slug, list_accounts
    from permanence.audit import service as audit
    from permanence.context import AccessContext

    rt = _runtime()
    try:
        with rt.db.session(AccessContext.system("cli:keys-rotate"), readonly=True) as s:
            accounts = [account_by_slug(s, account)] if account else list_accounts(s)
            targets = [(a.id, a.slug) for a in accounts]
        for account_id, slug in targets:
            ctx = AccessContext.system("cli:keys-rotate", account_id=account_id)
            with rt.db.session(ctx) as s:
                version, count = rt.keyring.rotate_account(s, account_id)
                audit.record(
                    s,
                    "keys.rotate",
                    "account",
                    account_id,
                    details={"version": version, "rewrapped": count},
                )
            typer.echo(f"{slug}: key version {version}, {count} data keys re-wrapped")
    finally:
        rt.close()


@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[
        Path | None, typer.Option(help="Exported checkpoint file(s) to check against")
    ] = None,
) -> None:
    """Recompute the hash chain; exit 1 naming the first broken entry."""
    from permanence.audit import service as audit
    from permanence.context import AccessContext

    external: list[dict[str, object]] = []
    if checkpoint is not None:
        try:
            data = json.loads(checkpoint.read_text())
        except (OSError, ValueError) as exc:
            fail(f"cannot read checkpoint file {checkpoint}: {exc.__class__.__name__}")
        external = data if isinstance(data, list) else [data]
    rt = _runtime()
    try:
        with rt.db.session(AccessContext.system("cli:audit-verify"), readonly=True) as s:
            result = audit.verify(s, rt.keyring.checkpoint_signing_key().public_key(), external)
    finally:
        rt.close()
    if not result.ok:
        fail(result.line())
    typer.echo(result.line())


@audit_app.command("checkpoint")
def audit_checkpoint(
    out: Annotated[Path | None, typer.Option(help="Also write the signed checkpoint here")] = None,
) -> None:
    """Sign the current head of the chain (Ed25519); keep the export away from the database."""
    from permanence.audit import service as audit
    from permanence.context import AccessContext

    rt = _runtime()
    try:
        with rt.db.session(AccessContext.system("cli:audit-checkpoint")) as s:
            cp = audit.create_checkpoint(s, rt.keyring)
    except ValueError as exc:
        fail(str(exc))
    finally:
        rt.close()
    text = json.dumps(cp, indent=2)
    if out:
        out.write_text(text + "\n")
        typer.echo(f"checkpoint at entry {cp['seq']} written to {out}")
    else:
        typer.echo(text)


@mandate_app.command("validate")
def mandate_validate(path: Path) -> None:
    """Check a mandate file; print every problem."""
    from permanence.mandates.schema import MandateInvalid, parse_mandate

    try:
        m = parse_mandate(_read(path))
    except MandateInvalid as exc:
        for p in exc.problems:
            typer.echo(f"- {p}", err=True)
        fail(f"{path}: {len(exc.problems)} problem(s)")
    typer.echo(f"{path}: valid mandate for '{m.account}' with {len(m.purposes)} purpose(s)")


@mandate_app.command("import")
def mandate_import(path: Path, account: Annotated[str, typer.Option(help="Account slug")]) -> None:
    """Store a file as the account's next mandate version."""
    from permanence.accounts.service import account_by_slug, import_mandate
    from permanence.context import AccessContext

    rt = _runtime()
    try:
        with rt.db.session(AccessContext.system("cli:mandate-import"), readonly=True) as s:
            account_id = account_by_slug(s, account).id
        with rt.db.session(AccessContext.system("cli:mandate-import", account_id)) as s:
            row = import_mandate(s, _read(path), account_id=account_id)
            typer.echo(f"{account}: mandate version {row.version} stored")
    finally:
        rt.close()


@mandate_app.command("export")
def mandate_export(
    account: Annotated[str, typer.Option(help="Account slug")],
    version: Annotated[int | None, typer.Option(help="Version (default: current)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="yaml or json")] = "yaml",
) -> None:
    """Print a mandate version."""
    from permanence.accounts.service import account_by_slug, export_mandate
    from permanence.context import AccessContext

    if fmt not in {"yaml", "json"}:
        fail("--format must be yaml or json")
    rt = _runtime()
    try:
        with rt.db.session(AccessContext.system("cli:mandate-export"), readonly=True) as s:
            account_id = account_by_slug(s, account).id
        with rt.db.session(
            AccessContext.system("cli:mandate-export", account_id), readonly=True
        ) as s:
            typer.echo(
                export_mandate(s, account_id, version, "json" if fmt == "json" else "yaml"),
                nl=False,
            )
    finally:
        rt.close()


@pii_app.command("scan")
def pii_scan(
    mask: Annotated[bool, typer.Option("--mask", help="Print the masked text instead")] = False,
    types: Annotated[str | None, typer.Option(help="Comma-separated types (default: all)")] = None,
) -> None:
    """Read text from stdin, one document per line; print JSON lines of the entities found."""
    from permanence.pii import ALL_TYPES, scan_lines

    chosen = [t.strip().upper() for t in types.split(",")] if types else None
    if chosen is not None and (bad := set(chosen) - set(ALL_TYPES)):
        typer.echo(
            f"error: unknown type(s) {', '.join(sorted(bad))}; known: {', '.join(ALL_TYPES)}",
            err=True,
        )
        raise typer.Exit(2)
    scan_lines(sys.stdin, sys.stdout, mask, chosen)


@deliveries_app.command("run")
def deliveries_run(
    limit: Annotated[int, typer.Option(help="At most this many sends per account")] = 500,
) -> None:
    """One pass: send what is due, retry what failed, escalate unacknowledged messages."""
    from permanence.delivery.worker import run_due

    rt = _runtime()
    try:
        counts = run_due(rt, limit=limit)
    finally:
        rt.close()
    typer.echo(" ".join(f"{k}={v}" for k, v in counts.items()))


@webhook_app.command("secret")
def webhook_secret(
    account: Annotated[str, typer.Option(help="Account slug")],
    name: Annotated[str, typer.Option(help="The mandate's secret_ref, e.g. env:CRM_SECRET")],
) -> None:
    """Create or rotate a webhook signing secret; prints it once (the previous one keeps
    signing for 24 hours alongside)."""
    from permanence.accounts.service import account_by_slug
    from permanence.context import AccessContext
    from permanence.delivery.service import set_webhook_secret

    rt = _runtime()
    try:
        with rt.db.session(AccessContext.system("cli:webhook-secret"), readonly=True) as s:
            account_id = account_by_slug(s, account).id
        with rt.db.session(AccessContext.system("cli:webhook-secret", account_id)) as s:
            secret, version = set_webhook_secret(s, rt.keyring, name)
    finally:
        rt.close()
    typer.echo(f"{account}: webhook secret {name} version {version} (shown once, store it now)")
    typer.echo(secret)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc.__class__.__name__}")


def main() -> None:
    from permanence.logs import configure_logging

    configure_logging("WARNING")
    try:
        app()
    except ValidationFailed as exc:
        typer.echo(f"error: {exc.message}", err=True)
        for p in exc.problems:
            if p != exc.message:
                typer.echo(f"- {p}", err=True)
        sys.exit(2)
    except PermanenceError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(2 if exc.status_code < 500 else 1)
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            # Settings from the environment: name the variable, not the value.
            fields = ", ".join(f"PERMANENCE_{str(e['loc'][0]).upper()}" for e in exc.errors())
            typer.echo(f"error: invalid configuration in {fields}", err=True)
            sys.exit(2)
        typer.echo(f"error: unexpected {exc.__class__.__name__}: {_safe(exc)}", err=True)
        sys.exit(1)


def _safe(exc: Exception) -> str:
    """First line of an unexpected error, for the operator; database errors can carry values,
    so for those only the class is given."""
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        return orig.__class__.__name__ if orig is not None else "database error"
    return str(exc).splitlines()[0][:200] if str(exc) else ""


__all__ = ["Settings", "app", "main"]
