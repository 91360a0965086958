"""Models and migrations must agree; every account-owned table is isolated."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool

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


# Indexes that are the leading columns of another index on their table, kept: each with why.
# A new one fails the test below until it is dropped or given its reason here.
PREFIX_INDEXES_KEPT = {
    # Not examined yet (found with this test): the statistics' eight-column covering index
    # is much wider than this one; EXPLAIN the call lists without it, as 0099 did for messages.
    "ix_calls_account_started": "ix_calls_account_stats",
    # Not examined yet (found with this test).
    "ix_subject_keys_account_id": "ix_subject_keys_account_id_epoch",
}


def test_no_index_is_the_prefix_of_another_unless_kept_for_a_reason(settings: Settings) -> None:
    """A plain index whose columns begin another plain index's, in the same order, serves no
    query that the longer cannot, and costs every write: ix_messages_account_created was one
    (dropped in 0099, EXPLAIN on both databases in docs/performance.md). Read from the
    migrated database.
    (Unique constraints are not compared: an index on account_id beside a unique constraint
    beginning with it is not looked at here.)"""
    url = PG_OWNER_URL if PG_URL else settings.effective_database_url
    engine = create_engine(url, poolclass=pool.NullPool)
    found: dict[str, str] = {}
    try:
        db = inspect(engine)
        for table in db.get_table_names():
            plain = [i for i in db.get_indexes(table) if not i["unique"]]
            for short in plain:
                n = len(short["column_names"])
                for long in plain:
                    cols = long["column_names"]
                    if len(cols) > n and cols[:n] == short["column_names"]:
                        found[str(short["name"])] = str(long["name"])
    finally:
        engine.dispose()
    assert found == PREFIX_INDEXES_KEPT
