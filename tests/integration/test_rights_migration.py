"""Migration 0072 (rights desk and callers' page) goes down and up again: the
``received_via`` column and the callers' code tables come and go; on PostgreSQL the codes
are under row-level security for the application role."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect, pool, text

from permanence import schema
from permanence.config import Settings
from permanence.runtime import Runtime
from tests.conftest import PG_URL


def _shape(url: str) -> tuple[set[str], set[str]]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        found = inspect(engine)
        tables = set(found.get_table_names())
        columns = {c["name"] for c in found.get_columns("rights_requests")}
    finally:
        engine.dispose()
    return tables, columns


def test_migration_0072_downgrades_and_upgrades(rt: Runtime, settings: Settings) -> None:
    rt.close()
    url = settings.effective_migration_url
    cfg = schema.alembic_config(url)
    mine = {"rights_caller_codes", "rights_caller_throttle"}
    try:
        tables, columns = _shape(url)
        assert mine <= tables and "received_via" in columns
        command.downgrade(cfg, "0070")
        tables, columns = _shape(url)
        assert not mine & tables and "received_via" not in columns
        assert "rights_requests" in tables
    finally:
        schema.upgrade(url, settings.database_app_role)
    tables, columns = _shape(url)
    assert mine <= tables and "received_via" in columns
    if PG_URL:
        engine = create_engine(url, poolclass=pool.NullPool)
        try:
            with engine.connect() as conn:
                forced = conn.execute(
                    text(
                        "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class "
                        "WHERE relname = 'rights_caller_codes'"
                    )
                ).scalar_one()
        finally:
            engine.dispose()
        assert forced
