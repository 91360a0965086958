"""Alembic environment. Run through ``permanence db upgrade`` (see permanence.schema)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

import permanence.models  # noqa: F401  (fills the metadata)
from permanence.db import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; use 'permanence db upgrade'")
run_migrations_online()
