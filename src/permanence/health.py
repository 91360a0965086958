"""Readiness: can this process serve? The database answers, its schema is the one this code
was written for, the master key opens the data, the data directory has room.

``/healthz`` is liveness only (the process runs); ``/readyz`` runs these checks, for load
balancers and monitoring; ``permanence serve`` refuses to start on a schema it does not expect.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, inspect, select, text

from permanence import infra
from permanence.context import AccessContext
from permanence.runtime import Runtime


@dataclass(frozen=True)
class Problem:
    code: str
    message: str


@dataclass
class Readiness:
    problems: list[Problem] = field(default_factory=list)
    revision: str | None = None

    @property
    def ready(self) -> bool:
        return not self.problems


# The migrations' files. Their revision ids are read from the files' text, not by importing
# Alembic and every migration: `permanence serve` checks the schema before it starts, and
# Alembic's import and its script directory were about a tenth of the start-up (issue 24).
# tests/integration/test_schema_revision.py checks the result against Alembic's reading.
VERSIONS = Path(__file__).parent / "migrations" / "versions"
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.+)$", re.MULTILINE)


@functools.cache
def migration_graph() -> dict[str, tuple[str, ...]]:
    """Each revision of this release's migrations and the revisions it follows."""
    graph: dict[str, tuple[str, ...]] = {}
    for path in sorted(VERSIONS.glob("*.py")):
        text_ = path.read_text(encoding="utf-8")
        found = {m[1]: ast.literal_eval(m[2].strip()) for m in _ASSIGNMENT.finditer(text_)}
        if "revision" not in found:
            continue  # __init__.py
        down = found.get("down_revision")
        graph[str(found["revision"])] = (
            () if down is None else (down,) if isinstance(down, str) else tuple(down)
        )
    return graph


@functools.cache
def expected_revision() -> str:
    """The schema revision this code expects: the head of its own migrations."""
    graph = migration_graph()
    followed = {down for downs in graph.values() for down in downs}
    heads = sorted(r for r in graph if r not in followed)
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {', '.join(heads)}")
    return heads[0]


def database_revision(engine: Engine) -> str | None:
    """The revision the database's schema is at (None: no schema at all), from Alembic's
    version table as Alembic reads it (one row; none, or no table: no schema)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:
        raise RuntimeError(f"the version table holds {len(rows)} revisions: {', '.join(rows)}")
    return str(rows[0]) if rows else None


def schema_problem(revision: str | None) -> Problem | None:
    """None when ``revision`` is the expected one; otherwise what to do about it."""
    expected = expected_revision()
    if revision == expected:
        return None
    if revision is None:
        return Problem(
            "schema_missing",
            f"the database has no schema; this release expects revision {expected}: "
            "run 'permanence db upgrade' as the schema owner",
        )
    if revision in migration_graph():
        return Problem(
            "schema_behind",
            f"the database schema is at revision {revision}, this release expects {expected}: "
            "run 'permanence db upgrade' as the schema owner (docs/deployment.md, Upgrade)",
        )
    return Problem(
        "schema_unknown",
        f"the database schema is at revision {revision}, unknown to this release (which "
        f"expects {expected}): a newer release migrated it; run that release "
        "(docs/deployment.md, Rollback)",
    )


def check(rt: Runtime) -> Readiness:
    """Every readiness check; each failure is a code and a message without personal data."""
    from permanence.accounts.model import Account
    from permanence.crypto.model import AccountKey, KeyEpoch
    from permanence.db import acting_for

    result = Readiness()
    try:
        result.revision = database_revision(rt.db.engine)
    except Exception as exc:
        failure = infra.classify(exc)
        if failure is None:
            raise
        result.problems.append(Problem(failure.code, f"{failure.message} ({infra.describe(exc)})"))
        return result
    schema = schema_problem(result.revision)
    if schema is not None:
        result.problems.append(schema)
        return result
    try:
        with rt.db.session(AccessContext.system("health:ready"), readonly=True) as s:
            account_id = s.scalar(select(Account.id).order_by(Account.created_at).limit(1))
            row = None
            live_epochs = set(
                s.scalars(select(KeyEpoch.epoch).where(KeyEpoch.destroyed_at.is_(None))).all()
            )
            if account_id is not None:
                with acting_for(s, account_id):
                    row = s.scalars(
                        select(AccountKey).where(AccountKey.account_id == account_id).limit(1)
                    ).first()
    except Exception as exc:
        failure = infra.classify(exc)
        if failure is None:
            raise
        result.problems.append(Problem(failure.code, f"{failure.message} ({infra.describe(exc)})"))
        return result
    if row is not None and not rt.keyring.opens(row):
        result.problems.append(
            Problem(
                "master_key_mismatch",
                "the master key does not open this database's keys: wrong key file or "
                "PERMANENCE_MASTER_KEY_COMMAND for this database",
            )
        )
    epochs_problem = _epochs_problem(rt, live_epochs)
    if epochs_problem is not None:
        result.problems.append(epochs_problem)
    if infra.disk_full(rt.settings.data_dir):
        result.problems.append(
            Problem(infra.STORAGE_FULL.code, "the data directory's disk is (almost) full")
        )
    return result


def _epochs_problem(rt: Runtime, live: set[int]) -> Problem | None:
    """The erasure-epoch key file must hold every epoch the database's keys are wrapped under
    (ADR 0029): else every caller reads as erased. A wrong file, or a replica's own."""
    from permanence.errors import ConfigurationError

    epochs = rt.keyring.epochs
    if epochs is None or not live:
        return None
    try:
        missing = sorted(e for e in live if epochs.get(e) is None)
    except ConfigurationError as exc:
        return Problem("epoch_keys_mismatch", exc.message)
    if not missing:
        return None
    return Problem(
        "epoch_keys_mismatch",
        f"the erasure-epoch key file {epochs.path} lacks the key of epoch(s) "
        f"{', '.join(map(str, missing))} that this database's caller keys are wrapped under: "
        "wrong PERMANENCE_ERASURE_EPOCH_FILE for this database, or a replica with a file of "
        "its own (docs/deployment.md)",
    )
