"""The schema revisions `permanence serve` and /readyz compare, read without Alembic (issue 24:
importing Alembic and loading every migration was about a tenth of the start-up): the same
answers as Alembic's own reading, on this release's migrations and on each kind of database."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from permanence import health, schema


def test_the_migrations_read_from_their_files_are_alembics() -> None:
    scripts = ScriptDirectory.from_config(schema.alembic_config("sqlite://"))
    alembic_graph = {
        s.revision: tuple(s._versioned_down_revisions) for s in scripts.walk_revisions()
    }
    assert health.migration_graph() == alembic_graph
    assert [health.expected_revision()] == scripts.get_heads()


def _alembic_reads(url: str) -> str | None:
    with create_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_the_database_revision_is_read_as_alembic_reads_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_engine(url)
    assert health.database_revision(engine) is None  # no table: no schema
    assert _alembic_reads(url) is None
    schema.upgrade(url)
    assert health.database_revision(engine) == _alembic_reads(url) == health.expected_revision()
    older = next(r for r in health.migration_graph() if r != health.expected_revision())
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": older})
    assert health.database_revision(engine) == _alembic_reads(url) == older
    assert health.schema_problem(older).code == "schema_behind"  # type: ignore[union-attr]
    assert health.schema_problem("ffff").code == "schema_unknown"  # type: ignore[union-attr]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0043')"))
    with pytest.raises(RuntimeError, match="2 revisions"):  # Alembic refuses it too
        health.database_revision(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    assert health.database_revision(engine) is None
    assert _alembic_reads(url) is None
    engine.dispose()
