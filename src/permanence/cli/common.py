"""What every command group shares: one clear error line, the runtime from the environment,
reading an input file, an account's access context, a dated output file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from permanence.config import get_settings

if TYPE_CHECKING:
    from permanence.context import AccessContext
    from permanence.runtime import Runtime


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def runtime() -> Runtime:
    from permanence.runtime import Runtime

    return Runtime.from_settings(get_settings())


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc.__class__.__name__}")


def account_ctx(rt: Runtime, slug: str, reason: str) -> AccessContext:
    """The system context of one account, found by its slug."""
    from permanence.accounts.service import account_by_slug
    from permanence.context import AccessContext

    with rt.db.session(AccessContext.system(reason), readonly=True) as s:
        account = account_by_slug(s, slug)
    return AccessContext.system(reason, account.id)


def dated(path: Path, stem: str, suffix: str) -> Path:
    """``path`` itself, or for a directory a new dated file in it (scheduled jobs)."""
    import datetime as dt

    if not path.is_dir():
        return path
    return path / f"{stem}-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%SZ')}{suffix}"
