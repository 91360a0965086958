"""``permanence telephony …``: the telephony housekeeping for cron (``serve`` runs the same
passes in its delivery loop)."""

from __future__ import annotations

import typer

from permanence.cli.common import runtime

app = typer.Typer(
    no_args_is_help=True, help="Telephony housekeeping: stale calls, recording downloads."
)


@app.command("resolve-stale")
def resolve_stale_command() -> None:
    """End calls with no final status after PERMANENCE_TELEPHONY_STALE_MINUTES: ask the
    provider (when its REST credentials are set), else mark them expired."""
    from permanence.telephony.stale import resolve_stale

    rt = runtime()
    try:
        counts = resolve_stale(rt)
    finally:
        rt.close()
    typer.echo(" ".join(f"{k}={v}" for k, v in counts.items()))


@app.command("recordings")
def recordings_command() -> None:
    """Fetch the recordings the provider announced (retrying failures with backoff), then
    delete them at the provider."""
    from permanence.recordings.downloads import run_due

    rt = runtime()
    try:
        counts = run_due(rt)
    finally:
        rt.close()
    typer.echo(" ".join(f"{k}={v}" for k, v in counts.items()))
