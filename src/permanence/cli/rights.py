"""``permanence rights``: data-subject requests and the erasure journal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import account_ctx, dated, fail, runtime
from permanence.cli_output import FORMAT_OPTION, Format, emit, progress, progress_report
from permanence.config import get_settings
from permanence.errors import PermanenceError

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True, help="Data-subject requests (Art. 12-22).")


@app.command("list")
def rights_list(
    account: Annotated[str, typer.Option(help="Slug of the account")],
    open_only: Annotated[bool, typer.Option("--open", help="Only requests still open")] = False,
    fmt: Annotated[Format, FORMAT_OPTION] = Format.text,
) -> None:
    """The account's requests, overdue and soonest due first: one line each (no names)."""
    from permanence.db import utcnow
    from permanence.rights import clock
    from permanence.rights import service as rights

    rt = runtime()
    now = utcnow()
    try:
        with rt.db.session(account_ctx(rt, account, "rights:list"), readonly=True) as s:
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


@app.command("sweep")
def rights_sweep(
    send: Annotated[bool, typer.Option(help="E-mail the reminders (default: only list)")] = False,
) -> None:
    """Reminders of requests due within 7 days or overdue (to each account's rights contact),
    and deletion of download files that were used or have expired. For cron, daily."""
    from sqlalchemy import select

    from permanence.accounts.model import Account, AccountStatus
    from permanence.context import AccessContext
    from permanence.db import utcnow
    from permanence.rights import downloads, public
    from permanence.rights import service as rights

    rt = runtime()
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
                purged = downloads.purge(s, outbox.files, now)
                public.sweep(s, now)  # expired one-time codes of the public page
            late = sum(1 for d in due if d.days_left < 0)
            typer.echo(
                f"{slug}: {len(due)} due within 7 days ({late} overdue), {purged} file(s) deleted"
            )
    finally:
        rt.close()


@app.command("journal-export")
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

    out = dated(out, "erasures", ".jsonl")

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
        fh.writelines(ejournal.line_of(e, mac_key, n) for n, e in enumerate(entries, start=1))
    typer.echo(f"{len(entries)} erasure journal entries written to {out}")


@app.command("journal-replay")
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
    from permanence.rights.journal import JOURNAL_STEPS

    try:
        with progress_report() as report:
            sources, total, replayed, absent = backups.replay_journal(
                get_settings(), journal, report, steps=JOURNAL_STEPS
            )
    except PermanenceError as exc:
        fail(exc.message)
    listed = ", ".join(f"{n} from {where}" for where, n in sources.items())
    typer.echo(
        f"erasure journal: {total} entries ({listed}), {replayed} replayed, "
        f"{absent} for accounts not in the database"
    )
