"""``permanence deliveries``: delivery of messages to clients."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import fail, runtime
from permanence.cli_output import FORMAT_OPTION, Format, emit

if TYPE_CHECKING:
    pass

app = typer.Typer(no_args_is_help=True, help="Delivery of messages to clients.")


@app.command("run")
def deliveries_run(
    limit: Annotated[int, typer.Option(help="At most this many sends per account")] = 500,
    fmt: Annotated[Format, FORMAT_OPTION] = Format.text,
) -> None:
    """One pass: send what is due, retry what failed, escalate unacknowledged messages."""
    from permanence.delivery.worker import OutcomesNotRecorded, run_due

    rt = runtime()
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
