"""``permanence contract …``: the Art. 28 contract on the Commission's SCC (contracts/scc.py),
generated, printed to PDF, signed and stored, from the DPO's command line."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Annotated

import typer

from permanence.cli.common import fail, runtime

app = typer.Typer(
    no_args_is_help=True,
    help=(
        "Art. 28 contracts generated on Decision (EU) 2021/915: generate, pdf, sign, status; "
        "sub-processors' deletion confirmations at off-boarding: confirm-deletion, offboarding."
    ),
)


def _account_id(slug: str) -> uuid.UUID:
    from permanence.accounts.service import account_by_slug
    from permanence.context import AccessContext
    from permanence.errors import NotFound

    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:contract"), readonly=True) as s:
            return account_by_slug(s, slug).id
    except NotFound:
        fail(f"no client account '{slug}'")
    finally:
        rt.close()


def _version_id(s: object, account_id: uuid.UUID, version: int | None) -> uuid.UUID:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from permanence.contracts.model import Contract

    assert isinstance(s, Session)
    q = select(Contract).where(Contract.account_id == account_id)
    if version is None:
        q = q.order_by(Contract.version.desc())
    else:
        q = q.where(Contract.version == version)
    contract = s.scalars(q).first()
    if contract is None:
        fail("no such contract version: run 'permanence contract generate' first")
    return contract.id


@app.command("generate")
def generate(
    account: Annotated[str, typer.Option(help="Slug of the client account")],
    reference: Annotated[str | None, typer.Option(help="Contract reference")] = None,
) -> None:
    """A new version of the client's contract on the SCC, unsigned (then 'contract pdf' to
    send the draft, 'contract sign' once both parties signed)."""

    from permanence.context import AccessContext
    from permanence.contracts import scc
    from permanence.errors import PermanenceError

    account_id = _account_id(account)
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:contract", account_id)) as s:
            c = scc.generate_contract(s, rt.settings, reference=reference)
            line = f"{account}: contract {c.reference} version {c.version} generated, unsigned"
    except PermanenceError as exc:
        fail(exc.message)
    finally:
        rt.close()
    typer.echo(line)


@app.command("pdf")
def pdf(
    account: Annotated[str, typer.Option(help="Slug of the client account")],
    out: Annotated[Path, typer.Option(help="Where to write the PDF")],
    version: Annotated[int | None, typer.Option(help="Version (default: the latest)")] = None,
) -> None:
    """The PDF of a version: as signed and stored if signed, else the draft as of now."""

    from permanence.context import AccessContext
    from permanence.contracts import scc
    from permanence.errors import PermanenceError

    account_id = _account_id(account)
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:contract", account_id), readonly=True) as s:
            data = scc.draft_pdf(s, rt.settings, _version_id(s, account_id, version))
    except PermanenceError as exc:
        fail(exc.message)
    finally:
        rt.close()
    out.write_bytes(data)
    typer.echo(f"written {out} ({len(data)} bytes)")


@app.command("sign")
def sign(
    account: Annotated[str, typer.Option(help="Slug of the client account")],
    controller_name: Annotated[str, typer.Option(help="Who signed for the client")],
    controller_capacity: Annotated[str, typer.Option(help="Their capacity (qualité)")],
    processor_name: Annotated[str, typer.Option(help="Who signed for the provider")],
    processor_capacity: Annotated[str, typer.Option(help="Their capacity (qualité)")],
    version: Annotated[int | None, typer.Option(help="Version (default: the latest)")] = None,
    signed_on: Annotated[
        str | None, typer.Option(help="Date of signature, YYYY-MM-DD (default: today)")
    ] = None,
    signed_pdf: Annotated[
        Path | None, typer.Option(help="The countersigned PDF, if signed on paper or elsewhere")
    ] = None,
) -> None:
    """Record the signature of a version and store its signed PDF with its SHA-256."""

    from permanence.context import AccessContext
    from permanence.contracts import scc
    from permanence.contracts.scc_document import Signatory
    from permanence.errors import PermanenceError

    when = None
    if signed_on:
        try:
            day = dt.date.fromisoformat(signed_on)
        except ValueError:
            fail("--signed-on must be a date YYYY-MM-DD")
        when = dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)
    data = None
    if signed_pdf is not None:
        try:
            data = signed_pdf.read_bytes()
        except OSError as exc:
            fail(f"cannot read {signed_pdf}: {exc.strerror}")
    account_id = _account_id(account)
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:contract", account_id)) as s:
            doc = scc.sign_generated(
                s,
                rt.settings,
                _version_id(s, account_id, version),
                signatories=[
                    Signatory("controller", controller_name, controller_capacity),
                    Signatory("processor", processor_name, processor_capacity),
                ],
                signed_at=when,
                signed_pdf=data,
            )
            line = f"{account}: signed, PDF stored ({doc.source}), SHA-256 {doc.sha256}"
    except PermanenceError as exc:
        fail(exc.message)
    finally:
        rt.close()
    typer.echo(line)


@app.command("status")
def status(account: Annotated[str, typer.Option(help="Slug of the client account")]) -> None:
    """Every version: reference, template, signature date, stored document and its hash."""

    from permanence.context import AccessContext
    from permanence.contracts import scc
    from permanence.contracts import service as contracts

    account_id = _account_id(account)
    rt = runtime()
    lines = []
    try:
        with rt.db.session(AccessContext.system("cli:contract", account_id), readonly=True) as s:
            st = contracts.contract_status(s)
            for c in st.versions:
                doc = scc.document_of(s, c.id)
                state = (
                    "in force"
                    if st.contract is not None and st.contract.id == c.id
                    else ("terminated" if c.terminated_at else "signed" if c.signed_at else "draft")
                )
                lines.append(
                    f"v{c.version} {c.reference} {c.template or 'clauses-list'} {state} "
                    + (f"PDF sha256 {doc.sha256}" if doc is not None else "no signed PDF")
                )
    finally:
        rt.close()
    for line in lines or ["no contract"]:
        typer.echo(line)


@app.command("confirm-deletion")
def confirm_deletion(
    account: Annotated[str, typer.Option(help="Slug of the off-boarded client account")],
    subprocessor: Annotated[str, typer.Option(help="Code of the sub-processor")],
    evidence: Annotated[
        str, typer.Option(help="Reference of its confirmation (statement, ticket, certificate)")
    ],
    confirmed_on: Annotated[
        str | None, typer.Option(help="Date of its confirmation, YYYY-MM-DD (default: today)")
    ] = None,
    document: Annotated[
        Path | None, typer.Option(help="The confirmation document, to keep its SHA-256")
    ] = None,
) -> None:
    """Record a sub-processor's confirmation that it deleted an off-boarded client's data."""
    import hashlib

    from permanence.context import AccessContext
    from permanence.contracts import deletions
    from permanence.errors import PermanenceError
    from permanence.render import paris_date

    try:
        day = (
            dt.date.fromisoformat(confirmed_on)
            if confirmed_on
            else paris_date(dt.datetime.now(dt.UTC))  # the service's "today" (deletions.py)
        )
    except ValueError:
        fail("--confirmed-on must be a date YYYY-MM-DD")
    digest = None
    if document is not None:
        try:
            digest = hashlib.sha256(document.read_bytes()).hexdigest()
        except OSError as exc:
            fail(f"cannot read {document}: {exc.strerror}")
    account_id = _account_id(account)
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:contract", account_id)) as s:
            deletions.confirm_deletion(
                s,
                account_id,
                subprocessor,
                confirmed_on=day,
                evidence=evidence,
                evidence_sha256=digest,
            )
            state = deletions.state_of(s, account_id)
    except PermanenceError as exc:
        fail(exc.message + "".join(f"\n  {p}" for p in getattr(exc, "problems", []) or []))
    finally:
        rt.close()
    left = ", ".join(state.missing)
    typer.echo(
        f"{account}: {subprocessor} confirmed; "
        + ("off-boarding complete" if state.complete else f"still awaited: {left}")
    )


@app.command("offboarding")
def offboarding_state(
    account: Annotated[str, typer.Option(help="Slug of the off-boarded client account")],
) -> None:
    """Each sub-processor's deletion confirmation for an off-boarded client."""
    from permanence.context import AccessContext
    from permanence.contracts import deletions

    account_id = _account_id(account)
    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:contract", account_id), readonly=True) as s:
            state = deletions.state_of(s, account_id)
    finally:
        rt.close()
    for line in state.lines:
        typer.echo(f"{line.code}: {line.state_fr()}")
    typer.echo("off-boarding complete" if state.complete else "off-boarding not complete")
