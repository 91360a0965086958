"""How commands report: text for people, ``--format json`` for scripts (docs/cli.md), and a
progress bar on long work - only on a terminal, so cron and pipes get clean output.

The JSON shapes are stable: fields may be added, never renamed or removed without a note in
docs/cli.md. Dates are ISO 8601 in UTC; there is no personal data in any of them.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer

T = TypeVar("T")


class Format(enum.StrEnum):
    text = "text"
    json = "json"


FORMAT_OPTION = typer.Option("--format", help="text for people, json for scripts (docs/cli.md)")


def _default(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def emit(data: object) -> None:
    """One JSON document on standard output."""
    typer.echo(json.dumps(data, default=_default, ensure_ascii=False, sort_keys=True, indent=2))


def on_terminal() -> bool:
    return sys.stderr.isatty()


def progress(items: Iterable[T], total: int, what: str) -> Iterator[T]:
    """``items``, with a progress bar on standard error when it is a terminal."""
    if not on_terminal() or total <= 1:
        yield from items
        return
    from rich.progress import Progress

    with Progress(transient=True, console=_console()) as bar:
        task = bar.add_task(what, total=total)
        for item in items:
            yield item
            bar.advance(task)


@contextmanager
def progress_report() -> Iterator[Callable[[str, int, int | None], None]]:
    """A ``report(what, done, total)`` for work that counts its own steps (backup, restore,
    journal replay): a bar per ``what`` on standard error when it is a terminal, nothing
    otherwise. ``total`` is None while unknown."""
    if not on_terminal():
        yield lambda _what, _done, _total: None
        return
    from rich.progress import Progress

    with Progress(transient=True, console=_console()) as bar:
        tasks: dict[str, Any] = {}

        def report(what: str, done: int, total: int | None) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        yield report


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)
