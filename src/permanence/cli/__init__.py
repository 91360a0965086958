"""The command line: ``permanence …``. Every command is scriptable (flags, no prompts) and
fails with one clear line on stderr and a non-zero exit, never a traceback.

One module per command group (``permanence db`` is :mod:`permanence.cli.db`, and so on), each
with its own ``app``; this module assembles them in the order ``--help`` lists them, and
registers the top-level commands (docs/architecture.md, "The command line")."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer

from permanence.cli import (
    access,
    art30,
    audit,
    audits,
    backups,
    breach,
    compliance,
    contract,
    db,
    deliveries,
    demo,
    keys,
    mandate,
    offboard,
    pii,
    retention,
    rights,
    routing,
    serve,
    setup,
    staff,
    stats,
    subprocessor,
    telephony,
    webhook,
)
from permanence.config import Settings
from permanence.errors import PermanenceError, ValidationFailed

# The root's settings, shared by the whole tree and by the tree of `serve` alone (command_for).
_ROOT: dict[str, Any] = {
    "add_completion": True,
    "no_args_is_help": True,
    "pretty_exceptions_enable": False,
    "help": "Permanence: a GDPR-compliant telephone answering service.",
}
app = typer.Typer(**_ROOT)
# Top-level commands, in the order --help lists them.
app.command()(setup.init)
app.command()(demo.demo)
app.command()(serve.serve)
app.command()(offboard.offboard)
app.command()(backups.backup)
app.command()(backups.restore)
# Command groups, in the order --help lists them.
app.add_typer(db.app, name="db")
app.add_typer(keys.app, name="keys")
app.add_typer(audit.app, name="audit")
app.add_typer(mandate.app, name="mandate")
app.add_typer(pii.app, name="pii")
app.add_typer(compliance.app, name="compliance")
app.add_typer(breach.app, name="breach")
app.add_typer(art30.app, name="art30")
app.add_typer(staff.app, name="staff")
app.add_typer(retention.app, name="retention")
app.add_typer(deliveries.app, name="deliveries")
app.add_typer(stats.app, name="stats")
app.add_typer(webhook.app, name="webhook")
app.add_typer(telephony.app, name="telephony")
app.add_typer(routing.app, name="routing")
app.add_typer(subprocessor.app, name="subprocessor")
app.add_typer(contract.app, name="contract")
app.add_typer(access.app, name="access")
app.add_typer(rights.app, name="rights")
app.add_typer(audits.app, name="audits")


def command_for(args: Sequence[str]) -> typer.Typer:
    """The tree ``main`` runs for the arguments ``args``: ``app``, or for ``permanence serve
    …`` a tree of that one command under the same root. Typer builds every command of a tree
    before it runs one (~25 ms of CPU, of the service's start, issue 24); the serve command
    parses, answers and fails as in ``app`` (tests/integration/test_startup_imports.py)."""
    if args[:1] != ["serve"]:
        return app
    tree = typer.Typer(**_ROOT)
    tree.callback()(_root)  # a root with a callback stays a group, as app is
    tree.command()(serve.serve)
    return tree


def _root() -> None:
    """The root of the tree of `serve` alone: nothing to do before the command."""


def main() -> None:
    from permanence.logs import configure_logging

    configure_logging("WARNING")
    try:
        command_for(sys.argv[1:])()
    except ValidationFailed as exc:
        typer.echo(f"error: {exc.message}", err=True)
        for p in exc.problems:
            if p != exc.message:
                typer.echo(f"- {p}", err=True)
        sys.exit(2)
    except PermanenceError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(2 if exc.status_code < 500 else 1)
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            # Settings from the environment: name the variable, not the value.
            fields = ", ".join(f"PERMANENCE_{str(e['loc'][0]).upper()}" for e in exc.errors())
            typer.echo(f"error: invalid configuration in {fields}", err=True)
            sys.exit(2)
        typer.echo(f"error: unexpected {exc.__class__.__name__}: {_safe(exc)}", err=True)
        sys.exit(1)


def _safe(exc: Exception) -> str:
    """First line of an unexpected error, for the operator; database errors can carry values,
    so for those only the class is given."""
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        return orig.__class__.__name__ if orig is not None else "database error"
    return str(exc).splitlines()[0][:200] if str(exc) else ""


__all__ = ["Settings", "app", "command_for", "main"]
