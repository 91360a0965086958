"""``permanence demo``: load the French demo data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from permanence.cli.common import runtime

if TYPE_CHECKING:
    pass


def demo() -> None:
    """Load realistic French demo data (three client accounts, staff, callers, calls…)."""
    from permanence.demo.loader import load_demo

    rt = runtime()
    try:
        summary = load_demo(rt)
    finally:
        rt.close()
    for line in summary:
        typer.echo(line)
