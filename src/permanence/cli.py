"""The command line: ``permanence …``. Every command is scriptable (flags, no prompts) and
fails with one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, NoReturn

import typer

from permanence.cli_output import FORMAT_OPTION, Format, emit, progress, progress_report
from permanence.config import Settings, get_settings
from permanence.errors import PermanenceError, ValidationFailed
from permanence.routing.cli import routing_app
from permanence.telephony.cli import telephony_app

if TYPE_CHECKING:
    import uuid

    from permanence.context import AccessContext
    from permanence.runtime import Runtime

app = typer.Typer(
    add_completion=True,
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
compliance_app = typer.Typer(no_args_is_help=True, help="Automated compliance checks.")
app.add_typer(compliance_app, name="compliance")
breach_app = typer.Typer(no_args_is_help=True, help="The breach register (Art. 33).")
app.add_typer(breach_app, name="breach")
art30_app = typer.Typer(no_args_is_help=True, help="Records of processing (Art. 30).")
app.add_typer(art30_app, name="art30")
staff_app = typer.Typer(no_args_is_help=True, help="Staff training and undertakings.")
app.add_typer(staff_app, name="staff")
retention_app = typer.Typer(no_args_is_help=True, help="Retention periods and legal holds.")
app.add_typer(retention_app, name="retention")
deliveries_app = typer.Typer(no_args_is_help=True, help="Delivery of messages to clients.")
app.add_typer(deliveries_app, name="deliveries")
webhook_app = typer.Typer(no_args_is_help=True, help="Webhooks to clients' systems.")
stats_app = typer.Typer(no_args_is_help=True, help="Statistics and usage reports.")
app.add_typer(stats_app, name="stats")
app.add_typer(webhook_app, name="webhook")
app.add_typer(telephony_app, name="telephony")
app.add_typer(routing_app, name="routing")


def _add_subprocessor_app() -> None:
    from permanence.compliance.cli_subprocessors import app as subprocessor_app

    app.add_typer(subprocessor_app, name="subprocessor")
    from permanence.contracts.cli import app as contract_app

    app.add_typer(contract_app, name="contract")
    from permanence.needtoknow.cli import app as access_app

    app.add_typer(access_app, name="access")


_add_subprocessor_app()


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
        # Hidden: a password on a command line is shown by 'ps' to every user of the host.
        # Kept for throwaway development databases (dev.py); production uses the variable
        # or the prompt (docs/deployment.md).
        typer.Option(
            help="Password (or set PERMANENCE_ADMIN_PASSWORD)", show_default=False, hidden=True
        ),
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
    if not password and sys.stdin.isatty():
        # Typed, not on the command line: nothing for 'ps' to show.
        password = typer.prompt(
            "Administrator's password", hide_input=True, confirmation_prompt=True
        )
    if not password:
        fail("set PERMANENCE_ADMIN_PASSWORD (or type the password at the prompt on a terminal)")
    check_policy(password, (admin_email, admin_name))
    from permanence.fsmodes import private_dir

    private_dir(settings.data_dir)
    key_file = settings.effective_master_key_file
    if settings.master_key:
        typer.echo("master key: from PERMANENCE_MASTER_KEY")
    elif settings.master_key_command:
        typer.echo("master key: from PERMANENCE_MASTER_KEY_COMMAND")
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
    """Run the web service (with the delivery worker, the retention sweep and the audit
    checkpoints, PERMANENCE_AUDIT_CHECKPOINT_MINUTES). Forwarded
    headers are trusted only from PERMANENCE_FORWARDED_ALLOW_IPS. On SQLite one process
    serves a database: a second 'serve' on the same file is refused (replicas need
    PostgreSQL, docs/deployment.md)."""
    import uvicorn

    from permanence.logs import configure_logging
    from permanence.recordings.storage import store_from_settings
    from permanence.retention.service import Scheduler
    from permanence.web.app import create_app

    settings = get_settings()
    configure_logging(settings.log_level)
    lock = None if settings.is_postgres else _lock_sqlite_database(settings)
    rt = _runtime()
    _refuse_unexpected_schema(rt)
    scheduler = None
    if settings.retention_interval_minutes:
        scheduler = Scheduler(
            rt.db,
            store_from_settings(settings),
            settings.retention_interval_minutes * 60.0,
            settings.retention_batch_size,
            settings.staff_stats_retention_days,
        )
        scheduler.start()
    checkpointer = None
    if settings.audit_checkpoint_minutes:
        from permanence.audit.publish import Checkpointer

        checkpointer = Checkpointer(rt, settings.audit_checkpoint_minutes * 60.0)
        checkpointer.start()
    try:
        # log_config=None: uvicorn's records go through our (redacting) root handler.
        uvicorn.run(
            create_app(rt, deliveries=True),
            host=host,
            port=port,
            log_config=None,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )
    finally:
        if scheduler is not None:
            scheduler.stop()
        if checkpointer is not None:
            checkpointer.stop()
        if lock is not None:
            lock.close()


def _refuse_unexpected_schema(rt: Runtime) -> None:
    """New code never runs on a schema it was not written for (an upgrade whose migration did
    not run, or a rollback below a newer release's migration). A database that cannot be
    reached yet does not stop the start: /readyz answers 503 until it can."""
    import logging

    from permanence import health, infra

    try:
        revision = health.database_revision(rt.db.engine)
    except Exception as exc:
        if infra.classify(exc) is None:
            raise
        logging.getLogger("permanence.serve").warning(
            "database not reachable at start (%s): /readyz answers 503 until it is",
            infra.describe(exc),
        )
        return
    problem = health.schema_problem(revision)
    if problem is not None:
        rt.close()
        fail(f"refusing to serve: {problem.message}", 3)


def _lock_sqlite_database(settings: Settings) -> IO[bytes] | None:
    """Hold an exclusive lock beside the SQLite file for the life of this process, so that a
    second 'serve' on the same database is refused instead of competing for its one writer.
    The lock goes with the process, even when it is killed."""
    import fcntl

    from sqlalchemy.engine import make_url

    database = make_url(settings.effective_database_url).database
    if not database or database == ":memory:":
        return None
    path = Path(database).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path.with_name(path.name + ".serve-lock"), "wb")  # noqa: SIM115 (held open)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        fail(
            "another 'permanence serve' is already running on this SQLite database; "
            "SQLite is served by one process - run replicas over PostgreSQL "
            "(docs/deployment.md)"
        )
    return handle


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations (and, on PostgreSQL, the application role's grants)."""
    from permanence import schema
    from permanence.fsmodes import private_dir, private_sqlite

    settings = get_settings()
    private_dir(settings.data_dir)
    private_sqlite(settings.effective_migration_url)
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
        for account_id, slug in progress(targets, len(targets), "key rotation"):
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
        Path | None,
        typer.Option(help="Another exported checkpoint file to check against (JSON or JSON lines)"),
    ] = None,
    fmt: Annotated[Format, FORMAT_OPTION] = Format.text,
) -> None:
    """Recompute the hash chain; exit 1 naming the first broken entry (and column). Checks
    against every checkpoint of PERMANENCE_AUDIT_CHECKPOINT_FILE too."""
    from permanence.audit import publish
    from permanence.audit import service as audit
    from permanence.context import AccessContext

    settings = get_settings()
    files = [settings.effective_audit_checkpoint_file]
    files += [checkpoint] if checkpoint is not None else []
    external: list[dict[str, object]] = []
    for path in files:
        if path == settings.effective_audit_checkpoint_file and not path.exists():
            continue
        try:
            external += publish.read(path)
        except (OSError, ValueError) as exc:
            fail(f"cannot read checkpoint file {path}: {exc}")
    rt = _runtime()
    try:
        with rt.db.session(AccessContext.system("cli:audit-verify"), readonly=True) as s:
            result = audit.verify(s, rt.keyring.checkpoint_signing_key().public_key(), external)
    finally:
        rt.close()
    if fmt is Format.json:
        emit(
            {
                "ok": result.ok,
                "entries": result.entries,
                "head_seq": result.head_seq,
                "checkpoints_matched": result.checkpoints,
                "broken_seq": result.broken_seq,
                "problem": result.problem,
            }
        )
        if not result.ok:
            raise typer.Exit(1)
        return
    if not result.ok:
        fail(result.line())
    typer.echo(result.line())


@audit_app.command("checkpoint")
def audit_checkpoint(
    out: Annotated[Path | None, typer.Option(help="Also write the signed checkpoint here")] = None,
) -> None:
    """Sign the current head of the chain (Ed25519) and append it to
    PERMANENCE_AUDIT_CHECKPOINT_FILE; keep that file away from the database."""
    from permanence.audit import publish
    from permanence.audit import service as audit
    from permanence.context import AccessContext

    rt = _runtime()
    try:
        with rt.db.session(AccessContext.system("cli:audit-checkpoint")) as s:
            cp = audit.create_checkpoint(s, rt.keyring)
        publish.append(rt.settings.effective_audit_checkpoint_file, cp)
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


@audit_app.command("prune")
def audit_prune(
    months: Annotated[int, typer.Option(help="Keep this many months (6 to 12)")] = 12,
    dry_run: Annotated[bool, typer.Option(help="Only count what would be pruned")] = False,
    out: Annotated[Path | None, typer.Option(help="Also write the signed anchor here")] = None,
) -> None:
    """Prune entries older than the retention period behind a signed anchor (CNIL logging
    recommendation); runs as the schema owner (PERMANENCE_DATABASE_MIGRATION_URL)."""
    from permanence.audit.retention import prune_with_owner
    from permanence.crypto.keyring import Keyring

    settings = get_settings()
    result = prune_with_owner(
        settings, Keyring.from_settings(settings), months=months, dry_run=dry_run
    )
    if dry_run:
        typer.echo(f"audit log: {result.entries} entries older than {months} months")
        return
    if out is not None and result.anchor is not None:
        out.write_text(json.dumps(result.anchor, indent=2) + "\n")
    typer.echo(result.line())


@mandate_app.command("validate")
def mandate_validate(path: Path) -> None:
    """Check a mandate file; print every problem."""
    from permanence.mandates.layer2 import external_layer2, first_layer_problems
    from permanence.mandates.schema import MandateInvalid, parse_mandate

    try:
        m = parse_mandate(_read(path))
        if problems := first_layer_problems(m):
            raise MandateInvalid(problems)
    except MandateInvalid as exc:
        for p in exc.problems:
            typer.echo(f"- {p}", err=True)
        fail(f"{path}: {len(exc.problems)} problem(s)")
    if external_layer2(m, get_settings().public_base_url):
        typer.echo(
            f"warning: notice.layer2_url points outside this service ({m.notice.layer2_url}): "
            "the product cannot check that page; leave it out to use the generated notice",
            err=True,
        )
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


@compliance_app.command("check")
def compliance_check(
    report: Annotated[Path | None, typer.Option(help="Also write a dated HTML report")] = None,
    fmt: Annotated[Format, FORMAT_OPTION] = Format.text,
) -> None:
    """Run every compliance check; one line each; exit 1 if any fails (for cron)."""
    from permanence.compliance.checks import run_checks
    from permanence.compliance.report import report_html
    from permanence.db import utcnow

    rt = _runtime()
    try:
        at = utcnow()
        results = run_checks(rt, at)
    finally:
        rt.close()
    if report is not None:
        report.write_text(report_html(results, at=at, deployment=rt.settings.provider_name))
    if fmt is Format.json:
        emit(
            {
                "at": at,
                "passed": all(r.passed for r in results),
                "checks": [
                    {
                        "code": r.code,
                        "title": r.title,
                        "passed": r.passed,
                        "summary": r.summary,
                        "evidence": r.evidence,
                    }
                    for r in results
                ],
            }
        )
        if not all(r.passed for r in results):
            raise typer.Exit(1)
        return
    for r in results:
        typer.echo(r.line())
        if not r.passed:
            for e in r.evidence:
                typer.echo(f"  - {e}")
    if report is not None:
        typer.echo(f"report written to {report}")
    failed = [r for r in results if not r.passed]
    if failed:
        fail(f"{len(failed)} compliance check(s) failed: {', '.join(r.code for r in failed)}")


@compliance_app.command("evidence")
def compliance_evidence(
    out: Annotated[Path, typer.Option(help="Where to write the signed evidence pack (.zip)")],
) -> None:
    """The auditor's evidence pack: Art. 30 records, checks, audit chain, training, rights
    and breach registers, sub-processors, contracts, requirements matrix; signed."""
    from permanence.compliance import evidence
    from permanence.context import AccessContext

    if out.exists():
        fail(f"{out} exists: give a new file name")
    rt = _runtime()
    try:
        pack = evidence.build(rt, AccessContext.system("cli:evidence"))
    finally:
        rt.close()
    out.write_bytes(pack.data)
    typer.echo(f"evidence pack written to {out} ({len(pack.data)} bytes)")
    failed = pack.summary["checks_failed"]
    typer.echo(f"compliance checks failed: {', '.join(failed) if failed else 'none'}")
    typer.echo(f"audit chain intact: {'yes' if pack.summary['audit_chain_ok'] else 'NO'}")


@compliance_app.command("verify-evidence")
def compliance_verify_evidence(
    pack: Path,
    public_key: Annotated[
        Path | None,
        typer.Option(help="The provider's public key (PEM); default: the one in the pack"),
    ] = None,
) -> None:
    """Check that an evidence pack is whole and signed; exit 1 naming what is wrong."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from permanence.compliance import evidence

    key = None
    try:
        data = pack.read_bytes()
        if public_key is not None:
            loaded = load_pem_public_key(public_key.read_bytes())
            if not isinstance(loaded, Ed25519PublicKey):
                fail(f"{public_key} is not an Ed25519 public key")
            key = loaded
    except (OSError, ValueError) as exc:
        fail(f"cannot read {exc.__class__.__name__}: {pack if key is None else public_key}")
    problems = evidence.verify_pack(data, key)
    if problems:
        fail("evidence pack NOT valid: " + "; ".join(problems))
    typer.echo("evidence pack valid: every file matches its signed SHA-256")


def _parse_when(value: str, name: str) -> object:
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(f"{name} must be an ISO date-time such as 2026-03-06T19:30+01:00")
    if when.tzinfo is None:
        fail(f"{name} needs a UTC offset, e.g. 2026-03-06T19:30+01:00")
    return when


@breach_app.command("open")
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
    rt = _runtime()
    try:
        with rt.db.session(AccessContext.system("cli:breach")) as s:
            b = breaches.open_breach(s, aware_at=when, nature=nature)
            typer.echo(b.reference)
    finally:
        rt.close()


@breach_app.command("scope")
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
    from permanence.errors import ValidationFailed

    t1, t2 = _parse_when(start, "--from"), _parse_when(end, "--to")
    assert isinstance(t1, dt.datetime) and isinstance(t2, dt.datetime)
    rt = _runtime()
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


@breach_app.command("notify")
def breach_notify(reference: str) -> None:
    """Notify every affected client of the current phase (portal, and e-mail if configured)."""
    from permanence.breaches import service as breaches
    from permanence.context import AccessContext
    from permanence.mail import mailer_for

    rt = _runtime()
    try:
        with rt.db.session(AccessContext.system("cli:breach")) as s:
            b = breaches.breach_by_reference(s, reference)
            sent = breaches.notify_controllers(
                s, b.id, mailer=mailer_for(rt.settings), portal_url=rt.settings.public_base_url
            )
            typer.echo(f"{reference}: {len(sent)} notification(s) sent (phase {b.phase})")
    finally:
        rt.close()


@breach_app.command("list")
def breach_list(fmt: Annotated[Format, FORMAT_OPTION] = Format.text) -> None:
    """The register: one line per breach with its clocks."""
    from permanence.breaches import service as breaches
    from permanence.context import AccessContext
    from permanence.render import paris

    rt = _runtime()
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


@breach_app.command("show")
def breach_show(reference: str) -> None:
    """One breach: contents, what is missing, affected accounts and their clocks."""
    from permanence.breaches import service as breaches
    from permanence.context import AccessContext
    from permanence.render import paris

    rt = _runtime()
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


@breach_app.command("export")
def breach_export(
    out: Annotated[Path, typer.Option(help="HTML file to write")],
    reference: Annotated[str | None, typer.Option(help="One breach (default: all)")] = None,
) -> None:
    """The register (or one breach) as an HTML document."""
    from permanence.breaches import service as breaches
    from permanence.context import AccessContext

    rt = _runtime()
    try:
        with rt.db.session(AccessContext.system("cli:breach")) as s:
            ids = [breaches.breach_by_reference(s, reference).id] if reference else None
            out.write_text(breaches.export_html(s, ids))
    finally:
        rt.close()
    typer.echo(f"written {out}")


@art30_app.command("export")
def art30_export(
    fmt: Annotated[str, typer.Option("--format", help="html or csv")] = "html",
    account: Annotated[str | None, typer.Option(help="Only this client's 30(2) record")] = None,
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout)")] = None,
) -> None:
    """The Art. 30 records, generated from the mandates and the configuration."""
    from permanence.accounts.service import account_by_slug
    from permanence.compliance import art30
    from permanence.context import AccessContext

    if fmt not in {"html", "csv"}:
        fail("--format must be html or csv")
    rt = _runtime()
    try:
        with rt.db.session(AccessContext.system("cli:art30")) as s:
            ids = [account_by_slug(s, account).id] if account else None
            text = art30.export(s, rt.settings, fmt, ids)
    finally:
        rt.close()
    if out:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"written {out}")
    else:
        typer.echo(text, nl=False)


@app.command()
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
    rt = _runtime()
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


def _staff_member(rt: Runtime, email: str) -> tuple[uuid.UUID, str]:
    from sqlalchemy import select

    from permanence.context import STAFF_ROLES, AccessContext
    from permanence.staff.model import User

    with rt.db.session(AccessContext.system("cli:staff"), readonly=True) as s:
        user = s.scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None or user.role not in STAFF_ROLES:
        fail("no staff member with this e-mail address")
    return user.id, user.role.value


@staff_app.command("sign-undertaking")
def staff_sign_undertaking(
    email: Annotated[str, typer.Option(help="The staff member's sign-in e-mail")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: this person has signed the undertaking")
    ] = False,
) -> None:
    """Record the staff member's signed confidentiality undertaking (current version)."""
    from permanence.context import AccessContext
    from permanence.staff.training import sign_undertaking

    if not yes:
        fail("confirm with --yes that this person has read and signed the undertaking")
    rt = _runtime()
    try:
        user_id, role = _staff_member(rt, email)
        with rt.db.session(AccessContext.system("cli:staff")) as s:
            row = sign_undertaking(s, user_id)
    finally:
        rt.close()
    typer.echo(f"undertaking version {row.version} recorded for user {user_id} ({role})")


@staff_app.command("reminders")
def staff_reminders(
    days: Annotated[int, typer.Option(help="Training expiring within this many days")] = 30,
    send: Annotated[bool, typer.Option("--send", help="E-mail each one (once)")] = False,
) -> None:
    """List (and with --send, e-mail) staff whose training expires soon or has expired."""
    from permanence.context import AccessContext
    from permanence.mail import SmtpMailer
    from permanence.render import paris
    from permanence.staff import training

    rt = _runtime()
    try:
        with rt.db.session(AccessContext.system("cli:staff-reminders")) as s:
            if send:
                items = training.send_reminders(s, SmtpMailer(rt.settings), days)
            else:
                items = training.expiring(s, days)
    finally:
        rt.close()
    for r in items:
        typer.echo(f"{r.email}  {r.course}  expires {paris(r.expires_at, '%d/%m/%Y')}")
    typer.echo(f"{len(items)} reminder(s) {'sent' if send else 'due'}")


@staff_app.command("train")
def staff_train(
    email: Annotated[list[str], typer.Option(help="A staff member's e-mail (repeat for several)")],
    module: Annotated[str, typer.Option(help="The module's code in the catalogue")],
    completed_on: Annotated[str, typer.Option(help="The day of the session, YYYY-MM-DD")],
    trainer: Annotated[str | None, typer.Option(help="Who gave the session")] = None,
    duration_minutes: Annotated[int | None, typer.Option(help="How long it lasted")] = None,
    attestation: Annotated[
        Path | None, typer.Option(help="The attestation (PDF, PNG or JPEG, 512 KiB at most)")
    ] = None,
) -> None:
    """Record a training session for one or several staff members (their access to personal
    data opens once they have also signed the confidentiality undertaking)."""
    import datetime as dt

    from permanence.context import AccessContext
    from permanence.render import paris
    from permanence.staff import attestations, onboarding

    try:
        day = dt.date.fromisoformat(completed_on)
    except ValueError:
        fail("--completed-on must be a date, YYYY-MM-DD")
    data = None
    if attestation is not None:
        try:
            with attestation.open("rb") as fh:
                data = fh.read(attestations.MAX_ATTESTATION_BYTES + 1)
        except OSError as exc:
            fail(f"cannot read the attestation file: {exc.strerror}")
    rt = _runtime()
    try:
        with rt.db.session(AccessContext.system("cli:staff-train")) as s:
            rows = onboarding.record_session(
                s,
                rt.keyring,
                attestations.store_for(rt.settings),
                user_ids=onboarding.user_ids_by_email(s, email),
                course=module,
                completed_on=day,
                trainer=trainer,
                duration_minutes=duration_minutes,
                attestation=data,
            )
            lines = [
                f"{r.user_id}  {r.course}  valid until {paris(r.expires_at, '%d/%m/%Y')}"
                for r in rows
            ]
    except PermanenceError as exc:
        fail(str(exc))
    finally:
        rt.close()
    for line in lines:
        typer.echo(line)
    typer.echo(f"{len(lines)} training record(s) written")


@staff_app.command("reset-password")
def staff_reset_password(
    email: Annotated[str, typer.Option(help="The staff member's e-mail")],
    new_authenticator: Annotated[
        bool, typer.Option("--new-authenticator", help="Also replace their TOTP authenticator")
    ] = False,
) -> None:
    """Reset a staff member's password (docs/adr/0014): the old one stops working, every
    session is closed, the API keys they created are revoked, and a single-use link (24 h) is
    e-mailed to them; without an SMTP server the link is printed, to hand over in person."""
    import permanence.models  # noqa: F401  (every table: the foreign keys resolve)
    from permanence.context import AccessContext
    from permanence.staff import credentials, mails

    rt = _runtime()
    try:
        with rt.db.session(AccessContext.system("cli:staff-reset-password")) as s:
            user_id = credentials.user_id_by_email(s, email)
            done = credentials.admin_reset(
                s, rt.keyring, user_id, new_authenticator=new_authenticator
            )
        emailed = mails.send_link(rt.settings, "admin_reset", done.link)
    finally:
        rt.close()
    typer.echo(f"password reset; sessions closed; {done.keys_revoked} API key(s) revoked")
    if emailed:
        typer.echo("a link to choose a new password was e-mailed (valid 24 hours)")
    else:
        typer.echo("no e-mail sent: hand over this link (valid 24 hours, single use):")
        typer.echo(mails.link_url(rt.settings, "admin_reset", done.link.token))
    if done.totp_uri:
        typer.echo(f"new TOTP enrolment URI (scan it now): {done.totp_uri}")


@staff_app.command("unlock")
def staff_unlock(email: Annotated[str, typer.Option(help="The user's e-mail")]) -> None:
    """Lift the lock put on an account after repeated failed sign-ins."""
    import permanence.models  # noqa: F401  (every table: the foreign keys resolve)
    from permanence.context import AccessContext
    from permanence.staff import credentials

    rt = _runtime()
    try:
        with rt.db.session(AccessContext.system("cli:staff-unlock")) as s:
            was_locked = credentials.admin_unlock(s, credentials.user_id_by_email(s, email))
    finally:
        rt.close()
    typer.echo("unlocked" if was_locked else "was not locked (failure count cleared)")


@deliveries_app.command("run")
def deliveries_run(
    limit: Annotated[int, typer.Option(help="At most this many sends per account")] = 500,
    fmt: Annotated[Format, FORMAT_OPTION] = Format.text,
) -> None:
    """One pass: send what is due, retry what failed, escalate unacknowledged messages."""
    from permanence.delivery.worker import OutcomesNotRecorded, run_due

    rt = _runtime()
    try:
        counts = run_due(rt, limit=limit)
    except OutcomesNotRecorded as exc:
        fail(
            f"{exc}: sent, but the database did not take the outcome; those deliveries are "
            "attempted again after their 10-minute lease"
        )
    finally:
        rt.close()
    if fmt is Format.json:
        emit(counts)
        return
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


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[bool, typer.Option(help="Count what is due; delete nothing")] = False,
    fmt: Annotated[Format, FORMAT_OPTION] = Format.text,
) -> None:
    """Delete every record past its retention period (not under legal hold); print counts."""
    from permanence.recordings.storage import store_from_settings
    from permanence.retention.service import sweep_exclusive

    rt = _runtime()
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


def _hold_ctx(rt: Runtime, slug: str) -> AccessContext:
    from permanence.accounts.service import account_by_slug
    from permanence.context import AccessContext

    with rt.db.session(AccessContext.system("retention-hold"), readonly=True) as s:
        account = account_by_slug(s, slug)
    return AccessContext.system("retention-hold", account.id)


@retention_app.command("hold")
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

    rt = _runtime()
    try:
        ids = [uuid.UUID(v) if v else None for v in (caller, record_id)]
    except ValueError:
        fail("--caller and --record-id must be ids (UUID)")
    try:
        with rt.db.session(_hold_ctx(rt, account)) as s:
            hold = place_hold(
                s, reason=reason, caller_id=ids[0], record_kind=record_kind, record_id=ids[1]
            )
    finally:
        rt.close()
    typer.echo(f"hold {hold.id} placed")


@retention_app.command("release")
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
    rt = _runtime()
    try:
        with rt.db.session(_hold_ctx(rt, account)) as s:
            release_hold(s, hid)
    finally:
        rt.close()
    typer.echo(f"hold {hid} released")


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


@stats_app.command("purge")
def stats_purge(
    dry_run: Annotated[bool, typer.Option(help="Count what is due; delete nothing")] = False,
) -> None:
    """Delete per-operator statistics older than PERMANENCE_STAFF_STATS_RETENTION_DAYS (the
    retention sweep does it too)."""
    from permanence.context import AccessContext
    from permanence.stats.service import count_staff_stats_due, purge_staff_stats

    rt = _runtime()
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


@stats_app.command("usage")
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
    rt = _runtime()
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


rights_app = typer.Typer(no_args_is_help=True, help="Data-subject requests (Art. 12-22).")
app.add_typer(rights_app, name="rights")

from permanence.audits.cli import audits_app  # noqa: E402  (its commands live beside the service)

app.add_typer(audits_app, name="audits")


@rights_app.command("list")
def rights_list(
    account: Annotated[str, typer.Option(help="Slug of the account")],
    open_only: Annotated[bool, typer.Option("--open", help="Only requests still open")] = False,
    fmt: Annotated[Format, FORMAT_OPTION] = Format.text,
) -> None:
    """The account's requests, overdue and soonest due first: one line each (no names)."""
    from permanence.db import utcnow
    from permanence.rights import clock
    from permanence.rights import service as rights

    rt = _runtime()
    now = utcnow()
    try:
        with rt.db.session(_account_ctx(rt, account, "rights:list"), readonly=True) as s:
            rows = rights.list_requests(s, open_only=open_only)
            if fmt is Format.json:
                emit(
                    {
                        "account": account,
                        "requests": [
                            {
                                "id": r.id,
                                "kind": r.kind,
                                "state": r.state,
                                "received_at": r.received_at,
                                "due_at": r.due_at,
                                "days_left": clock.days_left(r.due_at, now),
                                "overdue": not rights.is_closed(r) and now > r.due_at,
                            }
                            for r in rows
                        ],
                    }
                )
                rows = []
            for r in rows:
                late = " OVERDUE" if not rights.is_closed(r) and now > r.due_at else ""
                typer.echo(
                    f"{r.id} {r.kind:<13} {r.state:<12} due {clock.local_day(r.due_at)} "
                    f"({clock.days_left(r.due_at, now)} d){late}"
                )
    except PermanenceError as exc:
        fail(exc.message)
    finally:
        rt.close()


@rights_app.command("sweep")
def rights_sweep(
    send: Annotated[bool, typer.Option(help="E-mail the reminders (default: only list)")] = False,
) -> None:
    """Reminders of requests due within 7 days or overdue (to each account's rights contact),
    and deletion of download files that were used or have expired. For cron, daily."""
    from sqlalchemy import select

    from permanence.accounts.model import Account, AccountStatus
    from permanence.context import AccessContext
    from permanence.db import utcnow
    from permanence.rights import package, public
    from permanence.rights import service as rights

    rt = _runtime()
    now = utcnow()
    outbox = rights.Outbox.from_settings(rt.settings)
    try:
        with rt.db.session(AccessContext.system("rights:sweep"), readonly=True) as s:
            accounts = [
                (a.id, a.slug)
                for a in s.scalars(select(Account).where(Account.status == AccountStatus.ACTIVE))
            ]
        for account_id, slug in progress(accounts, len(accounts), "rights sweep"):
            with rt.db.session(AccessContext.system("rights:sweep", account_id)) as s:
                due = rights.send_reminders(s, outbox, now, send=send)
                purged = package.purge(s, outbox.files, now)
                public.sweep(s, now)  # expired one-time codes of the public page
            late = sum(1 for d in due if d.days_left < 0)
            typer.echo(
                f"{slug}: {len(due)} due within 7 days ({late} overdue), {purged} file(s) deleted"
            )
    finally:
        rt.close()


def _account_ctx(rt: Runtime, slug: str, reason: str) -> AccessContext:
    from permanence.accounts.service import account_by_slug
    from permanence.context import AccessContext

    with rt.db.session(AccessContext.system(reason), readonly=True) as s:
        account = account_by_slug(s, slug)
    return AccessContext.system(reason, account.id)


@app.command()
def backup(
    out: Annotated[
        Path,
        typer.Argument(
            help="Archive to write (refuses to overwrite a file); a directory: a dated "
            "permanence-YYYYMMDDTHHMMSSZ.pmbk in it (the backup timer)"
        ),
    ],
) -> None:
    """A consistent, encrypted backup of the database and its files, while the service runs.

    Encrypted under the backup key (PERMANENCE_BACKUP_KEY_FILE or PERMANENCE_BACKUP_KEY), not
    the master key; the master key is not in the archive (docs/backup.md)."""
    from permanence.backup import archive
    from permanence.backup import service as backups

    out = _dated(out, "permanence", ".pmbk")
    settings = get_settings()
    try:
        key = archive.load_backup_key(settings)
        with progress_report() as report:
            summary = backups.make_backup(settings, out, key, report)
    except PermanenceError as exc:
        fail(exc.message)
    typer.echo(summary.line())


def _dated(path: Path, stem: str, suffix: str) -> Path:
    """``path`` itself, or for a directory a new dated file in it (scheduled jobs)."""
    import datetime as dt

    if not path.is_dir():
        return path
    return path / f"{stem}-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%SZ')}{suffix}"


@app.command()
def restore(
    source: Annotated[Path, typer.Argument(help="Archive made by 'permanence backup'")],
    force: Annotated[
        bool, typer.Option(help="Replace a target database or data directory that holds data")
    ] = False,
    journal: Annotated[
        list[Path] | None,
        typer.Option(help="Erasure journal export(s) to replay too ('rights journal-export')"),
    ] = None,
    check: Annotated[
        bool, typer.Option(help="Only decrypt and check the archive; change nothing")
    ] = False,
) -> None:
    """Restore a backup into the configured database and data directory (stop the service
    first), bring the schema up to date, then replay the erasure journal so that everyone
    erased since the backup stays erased."""
    from permanence.backup import archive
    from permanence.backup import service as backups

    settings = get_settings()
    try:
        key = archive.load_backup_key(settings)
        if check:
            manifest = backups.check_archive(settings, source, key)
            rows = sum(int(t["rows"]) for t in manifest["tables"].values())
            typer.echo(
                f"archive intact: backup of {manifest['created_at']} ({manifest['backend']}, "
                f"revision {manifest['revision']}), {len(manifest['tables'])} tables, {rows} "
                f"rows, {len(manifest['entries'])} entries"
            )
            return
        with progress_report() as report:
            summary = backups.restore(
                settings, source, key, force=force, journal_files=journal, report=report
            )
    except PermanenceError as exc:
        fail(exc.message)
    typer.echo(summary.line())


@keys_app.command("backup-key")
def keys_backup_key(
    path: Annotated[Path, typer.Argument(help="File to create (mode 0600)")],
) -> None:
    """Make a new backup key file; point PERMANENCE_BACKUP_KEY_FILE at it. Keep it away from
    the backups and from the master key (docs/backup.md)."""
    from permanence.backup import archive

    try:
        kid = archive.create_key_file(path)
    except PermanenceError as exc:
        fail(exc.message)
    typer.echo(f"backup key written to {path} (mode 0600), key id {kid}")


@rights_app.command("journal-export")
def rights_journal_export(
    out: Annotated[
        Path,
        typer.Option(
            help="File to write (refuses to overwrite one); a directory: a dated "
            "erasures-YYYYMMDDTHHMMSSZ.jsonl in it"
        ),
    ],
) -> None:
    """Write the erasure journal (pseudonymous ids and times, each line authenticated) for
    'permanence restore --journal': keep it with the backups, it is what keeps an erased
    caller erased when an older backup is restored."""
    from sqlalchemy import create_engine, pool

    from permanence.backup import journal as ejournal
    from permanence.crypto.keyring import Keyring

    out = _dated(out, "erasures", ".jsonl")

    settings = get_settings()
    try:
        mac_key = ejournal.ErasureMirror.from_settings(
            settings, Keyring.from_settings(settings)
        ).mac_key
        engine = create_engine(settings.effective_migration_url, poolclass=pool.NullPool)
        try:
            with engine.begin() as conn:
                entries = ejournal.merge(ejournal.read_database(conn))
        finally:
            engine.dispose()
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fail(f"{out} already exists: refusing to overwrite it")
    except PermanenceError as exc:
        fail(exc.message)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(ejournal.line_of(e, mac_key) for e in entries)
    typer.echo(f"{len(entries)} erasure journal entries written to {out}")


@rights_app.command("journal-replay")
def rights_journal_replay(
    journal: Annotated[
        list[Path] | None,
        typer.Option(help="Erasure journal export(s) to replay too ('rights journal-export')"),
    ] = None,
) -> None:
    """Replay the erasure journal (the database's, the mirror file, exports) on the database as
    it is: after a restore made by other means than 'permanence restore' (PostgreSQL
    point-in-time recovery, a disk snapshot). Running it again changes nothing."""
    from permanence.backup import service as backups

    try:
        with progress_report() as report:
            sources, total, replayed, absent = backups.replay_journal(
                get_settings(), journal, report
            )
    except PermanenceError as exc:
        fail(exc.message)
    listed = ", ".join(f"{n} from {where}" for where, n in sources.items())
    typer.echo(
        f"erasure journal: {total} entries ({listed}), {replayed} replayed, "
        f"{absent} for accounts not in the database"
    )
