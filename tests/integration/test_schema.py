"""Models and migrations must agree; every account-owned table is isolated."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool

import permanence.models  # noqa: F401
from permanence.config import Settings
from permanence.db import Base, account_owned_tables
from tests.conftest import PG_OWNER_URL, PG_URL


def test_models_and_migrations_agree(settings: Settings) -> None:
    url = PG_OWNER_URL if PG_URL else settings.effective_database_url
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == [], f"models differ from migrations (run an autogenerate): {diff}"


def test_every_table_with_an_account_is_under_tenant_isolation() -> None:
    from permanence.migrations.versions import _tenant_tables  # type: ignore[attr-defined]

    assert set(account_owned_tables()) == set(_tenant_tables())
