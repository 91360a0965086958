"""``permanence telephony …``: the telephony housekeeping for cron (``serve`` runs the same
passes in its delivery loop)."""

from __future__ import annotations

import typer

from permanence.runtime import Runtime

telephony_app = typer.Typer(
    no_args_is_help=True, help="Telephony housekeeping: stale calls, recording downloads."
)


def _runtime() -> Runtime:
    from permanence.config import get_settings

    return Runtime.from_settings(get_settings())


@telephony_app.command("resolve-stale")
def resolve_stale_command() -> None:
    """End calls with no final status after PERMANENCE_TELEPHONY_STALE_MINUTES: ask the
    provider (when its REST credentials are set), else mark them expired."""
    from permanence.telephony.stale import resolve_stale

    rt = _runtime()
    try:
        counts = resolve_stale(rt)
    finally:
        rt.close()
    typer.echo(" ".join(f"{k}={v}" for k, v in counts.items()))


@telephony_app.command("recordings")
def recordings_command() -> None:
    """Fetch the recordings the provider announced (retrying failures with backoff), then
    delete them at the provider."""
    from permanence.recordings.downloads import run_due

    rt = _runtime()
    try:
        counts = run_due(rt)
    finally:
        rt.close()
    typer.echo(" ".join(f"{k}={v}" for k, v in counts.items()))
