"""``permanence compliance``: automated checks and evidence packs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import fail, runtime
from permanence.cli_output import FORMAT_OPTION, Format, emit

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True, help="Automated compliance checks.")


@app.command("check")
def compliance_check(
    report: Annotated[Path | None, typer.Option(help="Also write a dated HTML report")] = None,
    fmt: Annotated[Format, FORMAT_OPTION] = Format.text,
) -> None:
    """Run every compliance check; one line each; exit 1 if any fails (for cron)."""
    from permanence.compliance.checks import run_checks
    from permanence.compliance.report import report_html
    from permanence.db import utcnow

    rt = runtime()
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


@app.command("evidence")
def compliance_evidence(
    out: Annotated[Path, typer.Option(help="Where to write the signed evidence pack (.zip)")],
) -> None:
    """The auditor's evidence pack: Art. 30 records, checks, audit chain, training, rights
    and breach registers, sub-processors, contracts, requirements matrix; signed."""
    from permanence.compliance import evidence
    from permanence.context import AccessContext

    if out.exists():
        fail(f"{out} exists: give a new file name")
    rt = runtime()
    try:
        pack = evidence.build(rt, AccessContext.system("cli:evidence"))
    finally:
        rt.close()
    out.write_bytes(pack.data)
    typer.echo(f"evidence pack written to {out} ({len(pack.data)} bytes)")
    failed = pack.summary["checks_failed"]
    typer.echo(f"compliance checks failed: {', '.join(failed) if failed else 'none'}")
    typer.echo(f"audit chain intact: {'yes' if pack.summary['audit_chain_ok'] else 'NO'}")


@app.command("verify-evidence")
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
