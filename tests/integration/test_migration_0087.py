"""Migration 0087 (OpenDSR callbacks in the delivery ledger, the hashed e-mail index) goes up
and down: the downgrade makes deliveries.mandate_id required again and drops the index
column; the upgrade brings both back."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from permanence import schema
from permanence.config import Settings


def _shape(url: str) -> tuple[bool, set[str], set[str]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        inspector = sa.inspect(engine)
        mandate = next(c for c in inspector.get_columns("deliveries") if c["name"] == "mandate_id")
        callers = {c["name"] for c in inspector.get_columns("callers")}
        indexes = {i["name"] or "" for i in inspector.get_indexes("callers")}
    finally:
        engine.dispose()
    return bool(mandate["nullable"]), callers, indexes


def test_migration_0087_up_and_down(settings: Settings) -> None:
    url = settings.effective_migration_url
    nullable, callers, indexes = _shape(url)
    assert nullable and "email_sha256_bidx" in callers
    assert "ix_callers_account_email_sha256" in indexes
    cfg = schema.alembic_config(url)
    try:
        command.downgrade(cfg, "0087-1")
        nullable, callers, indexes = _shape(url)
        assert not nullable and "email_sha256_bidx" not in callers
        assert "ix_callers_account_email_sha256" not in indexes
        assert "email_bidx" in callers  # nothing else went
    finally:
        schema.upgrade(url, settings.database_app_role)
    nullable, callers, _ = _shape(url)
    assert nullable and "email_sha256_bidx" in callers
