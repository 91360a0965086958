"""Migration 0075 (reset and unlock links, recovery codes, the per-account lock) goes up and
down: the downgrade drops what it added, the upgrade brings it back."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from permanence import schema
from permanence.config import Settings


def _shape(url: str) -> tuple[set[str], set[str], set[str]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names())
        failures = {c["name"] for c in inspector.get_columns("auth_failures")}
        key_indexes = {i["name"] or "" for i in inspector.get_indexes("api_keys")}
    finally:
        engine.dispose()
    return tables, failures, key_indexes


def test_migration_0075_up_and_down(settings: Settings) -> None:
    url = settings.effective_migration_url
    tables, failures, indexes = _shape(url)
    assert {"auth_tokens", "recovery_codes"} <= tables
    assert "locked_at" in failures and "ix_api_keys_created_by" in indexes
    cfg = schema.alembic_config(url)
    try:
        command.downgrade(cfg, "0075-1")
        tables, failures, indexes = _shape(url)
        assert not {"auth_tokens", "recovery_codes"} & tables
        assert "locked_at" not in failures and "ix_api_keys_created_by" not in indexes
        assert "users" in tables  # nothing else went
    finally:
        schema.upgrade(url, settings.database_app_role)
    tables, failures, _ = _shape(url)
    assert {"auth_tokens", "recovery_codes"} <= tables and "locked_at" in failures
