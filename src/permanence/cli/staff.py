"""``permanence staff``: staff undertakings, training, passwords."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import fail, runtime
from permanence.errors import PermanenceError

if TYPE_CHECKING:
    import uuid

    from permanence.runtime import Runtime

app = typer.Typer(no_args_is_help=True, help="Staff training and undertakings.")


def _staff_member(rt: Runtime, email: str) -> tuple[uuid.UUID, str]:
    from sqlalchemy import select

    from permanence.context import STAFF_ROLES, AccessContext
    from permanence.staff.model import User

    with rt.db.session(AccessContext.system("cli:staff"), readonly=True) as s:
        user = s.scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None or user.role not in STAFF_ROLES:
        fail("no staff member with this e-mail address")
    return user.id, user.role.value


@app.command("sign-undertaking")
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
    rt = runtime()
    try:
        user_id, role = _staff_member(rt, email)
        with rt.db.session(AccessContext.system("cli:staff")) as s:
            row = sign_undertaking(s, user_id)
    finally:
        rt.close()
    typer.echo(f"undertaking version {row.version} recorded for user {user_id} ({role})")


@app.command("reminders")
def staff_reminders(
    days: Annotated[int, typer.Option(help="Training expiring within this many days")] = 30,
    send: Annotated[bool, typer.Option("--send", help="E-mail each one (once)")] = False,
) -> None:
    """List (and with --send, e-mail) staff whose training expires soon or has expired."""
    from permanence.context import AccessContext
    from permanence.mail import SmtpMailer
    from permanence.render import paris
    from permanence.staff import training

    rt = runtime()
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


@app.command("train")
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
    rt = runtime()
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


@app.command("reset-password")
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

    rt = runtime()
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


@app.command("unlock")
def staff_unlock(email: Annotated[str, typer.Option(help="The user's e-mail")]) -> None:
    """Lift the lock put on an account after repeated failed sign-ins."""
    import permanence.models  # noqa: F401  (every table: the foreign keys resolve)
    from permanence.context import AccessContext
    from permanence.staff import credentials

    rt = runtime()
    try:
        with rt.db.session(AccessContext.system("cli:staff-unlock")) as s:
            was_locked = credentials.admin_unlock(s, credentials.user_id_by_email(s, email))
    finally:
        rt.close()
    typer.echo("unlocked" if was_locked else "was not locked (failure count cleared)")
