"""Schema management: Alembic upgrades, row-level security and grants on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, pool, text

MIGRATIONS = Path(__file__).parent / "migrations"
# Tables the application role may append to and read, never change (tamper evidence).
APPEND_ONLY = ("audit_log", "audit_checkpoints", "erasure_journal")
# PostgreSQL advisory lock held by a migration ("permmigr"); see upgrade().
MIGRATION_LOCK_KEY = 0x7065726D6D696772


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, app_role: str | None = None) -> None:
    """Bring the schema to head, then (PostgreSQL) grant the application role its rights.

    On PostgreSQL the transaction first takes an advisory lock, so that replicas starting
    together (each host's ``permanence-migrate`` unit) migrate one after the other: the
    first brings the schema to head, the others find it there."""
    from permanence.fsmodes import private_sqlite

    private_sqlite(url)  # a new SQLite file is created 0600 (fsmodes)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            if conn.dialect.name == "postgresql" and app_role:
                grant_app_role(conn, app_role)
    finally:
        engine.dispose()


def new_revision(message: str, rev_id: str | None = None) -> list[str]:
    """Autogenerate a revision from the models (developers: ``permanence db revision``).

    Compares the models with a scratch SQLite database at head. Review the result, and list
    in ``TENANT_TABLES`` every new table that has an ``account_id``.
    """
    import tempfile

    from alembic.script import Script

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/scratch.db"
        upgrade(url)
        out = command.revision(
            alembic_config(url), message=message, autogenerate=True, rev_id=rev_id
        )
    scripts = out if isinstance(out, list) else [out]
    return [s.path for s in scripts if isinstance(s, Script)]


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"invalid PostgreSQL role name: {name!r}")
    return f'"{name}"'


def grant_app_role(conn: Connection, role: str) -> None:
    r = _ident(role)
    conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {r}"))
    conn.execute(
        text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {r}")
    )
    conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {r}"))
    for table in APPEND_ONLY:
        conn.execute(text(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {r}"))
    # The chain head: moved forward by the append path only (UPDATE, checked at commit by the
    # trigger audit_head_follows_log, migration 0074); never inserted, deleted or emptied.
    conn.execute(text(f"REVOKE INSERT, DELETE, TRUNCATE ON audit_head FROM {r}"))
    conn.execute(text(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {r}"))


def enable_tenant_isolation(conn: Connection, table: str, *, routing_read: bool = False) -> None:
    """Row-level security keyed on ``app.account_id``; fails closed when it is not set.

    Used from migrations. FORCE makes it apply to the table owner too; superusers still
    bypass it, which is why the application connects as a role of its own.
    """
    if conn.dialect.name != "postgresql":
        return
    account = "NULLIF(current_setting('app.account_id', true), '')::uuid"
    conn.execute(text(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"))
    conn.execute(text(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY"))
    conn.execute(
        text(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING (account_id = {account}) WITH CHECK (account_id = {account})"
        )
    )
    if routing_read:
        # Routing an incoming call must find the account from the dialled number before any
        # account is set: a transaction that says it is routing may read (not write) here.
        conn.execute(
            text(
                f"CREATE POLICY routing_read ON {table} FOR SELECT "
                "USING (current_setting('app.routing', true) = 'on')"
            )
        )
