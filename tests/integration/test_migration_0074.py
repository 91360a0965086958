"""Migration 0074: api_keys under row-level security, the audit head guarded; up and down."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, pool, text

from permanence import schema
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.runtime import Runtime
from permanence.staff import auth
from tests.conftest import PG_URL
from tests.factories import make_account


def _state(url: str) -> tuple[bool, bool, int]:
    """(api_keys under RLS, audit head trigger present, keys readable by the owner)."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            if not PG_URL:
                n = conn.execute(text("SELECT count(*) FROM api_keys")).scalar_one()
                return False, False, int(n)
            rls = conn.execute(
                text("SELECT relforcerowsecurity FROM pg_class WHERE relname = 'api_keys'")
            ).scalar_one()
            trigger = conn.execute(
                text("SELECT count(*) FROM pg_trigger WHERE tgname = 'audit_head_follows_log'")
            ).scalar_one()
            conn.execute(text("ALTER TABLE api_keys NO FORCE ROW LEVEL SECURITY"))
            n = conn.execute(text("SELECT count(*) FROM api_keys")).scalar_one()
            if rls:
                conn.execute(text("ALTER TABLE api_keys FORCE ROW LEVEL SECURITY"))
            return bool(rls), bool(trigger), int(n)
    finally:
        engine.dispose()


def test_migration_0074_upgrades_and_downgrades_keeping_the_keys(
    rt: Runtime, settings: Settings
) -> None:
    account = make_account(rt)
    ctx = AccessContext(role=Role.CLIENT, reason="test", actor_id=account.id, account_id=account.id)
    with rt.db.session(ctx) as s:
        auth.create_api_key(s, account.id, name="crm", scopes=["messages:read"])
    rt.close()
    url = settings.effective_migration_url
    on_pg = bool(PG_URL)
    assert _state(url) == (on_pg, on_pg, 1)
    try:
        command.downgrade(schema.alembic_config(url), "0070")
        assert _state(url) == (False, False, 1)
    finally:
        schema.upgrade(url, settings.database_app_role)
    assert _state(url) == (on_pg, on_pg, 1)
