"""``permanence serve``: the web service with its background workers."""

from __future__ import annotations

from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from permanence.cli.common import fail, runtime
from permanence.config import Settings, get_settings

if TYPE_CHECKING:
    from permanence.runtime import Runtime


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes serving requests (more than 1: PostgreSQL)")
    ] = 1,
) -> None:
    """Run the web service (with the delivery worker, the retention sweep and the audit
    checkpoints, PERMANENCE_AUDIT_CHECKPOINT_MINUTES). Forwarded
    headers are trusted only from PERMANENCE_FORWARDED_ALLOW_IPS. On SQLite one process
    serves a database: a second 'serve' on the same file is refused (replicas need
    PostgreSQL, docs/deployment.md). --workers N runs N processes on one port (PostgreSQL:
    each runs a delivery worker, the database shares the work out, ADR 0009)."""
    import uvicorn

    from permanence.filestore import store_from_settings
    from permanence.logs import configure_logging
    from permanence.retention.service import Scheduler
    from permanence.web.app import create_app

    settings = get_settings()
    if workers > 1 and not settings.is_postgres:
        fail(
            f"--workers {workers}: plusieurs processus demandent PostgreSQL ; SQLite n'a qu'un "
            "écrivain et un seul processus le sert (--workers 1) / several processes need "
            "PostgreSQL: SQLite has one writer and is served by one process (docs/deployment.md)",
            code=2,
        )
    configure_logging(settings.log_level)
    lock = None if settings.is_postgres else _lock_sqlite_database(settings)
    rt = runtime()
    _refuse_unexpected_schema(rt)
    scheduler = None
    if settings.retention_interval_minutes:
        scheduler = Scheduler(
            rt.db,
            store_from_settings(settings),
            settings.retention_interval_minutes * 60.0,
            settings.retention_batch_size,
            settings.staff_stats_retention_days,
        )
        scheduler.start()
    checkpointer = None
    if settings.audit_checkpoint_minutes:
        from permanence.audit.publish import Checkpointer

        checkpointer = Checkpointer(rt, settings.audit_checkpoint_minutes * 60.0)
        checkpointer.start()
    # Erasure epochs: rotated after erasures (debounced) and on a schedule (ADR 0029).
    from permanence.cli.keys import record_epoch_rotation
    from permanence.crypto.rotation import EpochRotator

    rotator = EpochRotator(
        rt.db,
        rt.keyring,
        delay=settings.erasure_epoch_delay_minutes * 60.0,
        max_age=settings.erasure_epoch_days * 86400.0,
        on_rotated=lambda reason, done: record_epoch_rotation(
            rt, "serve:epoch-rotation", reason, done
        ),
    )
    rotator.start()
    try:
        # log_config=None: uvicorn's records go through our (redacting) root handler.
        uvicorn.run(
            # N processes: each builds its app (web.app:from_environment) on the shared socket.
            create_app(rt, deliveries=True)
            if workers == 1
            else "permanence.web.app:from_environment",
            factory=workers > 1,
            workers=workers if workers > 1 else None,
            host=host,
            port=port,
            log_config=None,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )
    finally:
        if scheduler is not None:
            scheduler.stop()
        if checkpointer is not None:
            checkpointer.stop()
        rotator.stop()
        if lock is not None:
            lock.close()


def _refuse_unexpected_schema(rt: Runtime) -> None:
    """New code never runs on a schema it was not written for (an upgrade whose migration did
    not run, or a rollback below a newer release's migration). A database that cannot be
    reached yet does not stop the start: /readyz answers 503 until it can."""
    import logging

    from permanence import health, infra

    try:
        revision = health.database_revision(rt.db.engine)
    except Exception as exc:
        if infra.classify(exc) is None:
            raise
        logging.getLogger("permanence.serve").warning(
            "database not reachable at start (%s): /readyz answers 503 until it is",
            infra.describe(exc),
        )
        return
    problem = health.schema_problem(revision)
    if problem is not None:
        rt.close()
        fail(f"refusing to serve: {problem.message}", 3)


def _lock_sqlite_database(settings: Settings) -> IO[bytes] | None:
    """Hold an exclusive lock beside the SQLite file for the life of this process, so that a
    second 'serve' on the same database is refused instead of competing for its one writer.
    The lock goes with the process, even when it is killed."""
    import fcntl

    from sqlalchemy.engine import make_url

    database = make_url(settings.effective_database_url).database
    if not database or database == ":memory:":
        return None
    path = Path(database).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path.with_name(path.name + ".serve-lock"), "wb")  # noqa: SIM115 (held open)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        fail(
            "another 'permanence serve' is already running on this SQLite database; "
            "SQLite is served by one process - run replicas over PostgreSQL "
            "(docs/deployment.md)"
        )
    return handle
