"""``permanence audit``: the tamper-evident audit log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import fail, runtime
from permanence.cli_output import FORMAT_OPTION, Format, emit
from permanence.config import get_settings

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log.")


@app.command("verify")
def audit_verify(
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Another exported checkpoint file to check against (JSON or JSON lines)"),
    ] = None,
    fmt: Annotated[Format, FORMAT_OPTION] = Format.text,
) -> None:
    """Recompute the hash chain; exit 1 naming the first broken entry (and column). Checks
    against every checkpoint of PERMANENCE_AUDIT_CHECKPOINT_FILE too."""
    from permanence.audit import integrity, publish
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
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:audit-verify"), readonly=True) as s:
            result = integrity.verify(s, rt.keyring.checkpoint_signing_key().public_key(), external)
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


@app.command("checkpoint")
def audit_checkpoint(
    out: Annotated[Path | None, typer.Option(help="Also write the signed checkpoint here")] = None,
) -> None:
    """Sign the current head of the chain (Ed25519) and append it to
    PERMANENCE_AUDIT_CHECKPOINT_FILE; keep that file away from the database."""
    from permanence.audit import integrity, publish
    from permanence.context import AccessContext

    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:audit-checkpoint")) as s:
            cp = integrity.create_checkpoint(s, rt.keyring)
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


@app.command("prune")
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
