"""api keys under row-level security; the audit head follows the log; practice audits

Revision ID: 0074
Revises: 0073
Create Date: 2026-12-06 07:20:00

- ``api_keys`` joins the tables under row-level security (ADR 0003). A key is presented
  before its account is known, so one more read-only policy lets a transaction read the
  single key it names in ``app.api_key_id`` (set by ``auth.resolve_api_key``).
- ``audit_head`` may only name the last entry of ``audit_log``: a deferred constraint
  trigger checks it at commit, so rewinding the head to hide a cut tail is refused, for
  the owner too; the application role may not INSERT, DELETE or TRUNCATE it (grants in
  ``permanence.schema``). See docs/adr/0013.
- ``practice_audits`` and ``practice_audit_actions``: audits of the service and of its
  sub-processors, with follow-up actions (provider-level records, no account: outside RLS).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import permanence.db
from permanence.schema import enable_tenant_isolation

revision: str = "0074"
down_revision: str | None = "0073"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables created here whose rows belong to one account: put under row-level security.
TENANT_TABLES: list[str] = ["api_keys"]

_HEAD_CHECK = """
CREATE OR REPLACE FUNCTION audit_head_follows_log() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash varchar;
BEGIN
    -- Checked at commit against the head as it is then (a transaction may move it often).
    SELECT seq, hash INTO head_seq, head_hash FROM audit_head WHERE id = NEW.id;
    IF NEW.id <> OLD.id THEN
        RAISE EXCEPTION 'audit_head: the head row keeps its id';
    END IF;
    IF EXISTS (SELECT 1 FROM audit_log WHERE seq > head_seq) THEN
        RAISE EXCEPTION 'audit_head: the head must name the last entry of audit_log';
    END IF;
    IF head_seq > 0 AND NOT EXISTS (
        SELECT 1 FROM audit_log WHERE seq = head_seq AND hash = head_hash
    ) THEN
        RAISE EXCEPTION 'audit_head: the head must name the last entry of audit_log';
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "practice_audits",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subprocessor_id", sa.Uuid(), nullable=True),
        sa.Column("performed_on", sa.Date(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("next_due_on", sa.Date(), nullable=False),
        sa.Column("recorded_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", permanence.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subprocessor_id"],
            ["subprocessors.id"],
            name=op.f("fk_practice_audits_subprocessor_id_subprocessors"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_practice_audits")),
    )
    with op.batch_alter_table("practice_audits", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_practice_audits_subprocessor_id"), ["subprocessor_id"], unique=False
        )
    op.create_table(
        "practice_audit_actions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("audit_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=500), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("done_at", permanence.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["audit_id"],
            ["practice_audits.id"],
            name=op.f("fk_practice_audit_actions_audit_id_practice_audits"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_practice_audit_actions_owner_id_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_practice_audit_actions")),
    )
    with op.batch_alter_table("practice_audit_actions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_practice_audit_actions_audit_id"), ["audit_id"], unique=False
        )
    conn = op.get_bind()
    for table in TENANT_TABLES:
        enable_tenant_isolation(conn, table)
    if conn.dialect.name != "postgresql":
        return
    op.execute(
        "CREATE POLICY api_key_lookup ON api_keys FOR SELECT "
        "USING (id = NULLIF(current_setting('app.api_key_id', true), '')::uuid)"
    )
    # OR REPLACE: a restore at another revision drops the tables (and so the trigger), not the
    # function.
    op.execute(_HEAD_CHECK)
    op.execute(
        "CREATE CONSTRAINT TRIGGER audit_head_follows_log AFTER UPDATE ON audit_head "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_head_follows_log()"
    )


def downgrade() -> None:
    with op.batch_alter_table("practice_audit_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_practice_audit_actions_audit_id"))
    op.drop_table("practice_audit_actions")
    with op.batch_alter_table("practice_audits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_practice_audits_subprocessor_id"))
    op.drop_table("practice_audits")
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER audit_head_follows_log ON audit_head")
    op.execute("DROP FUNCTION audit_head_follows_log()")
    op.execute("DROP POLICY api_key_lookup ON api_keys")
    op.execute("DROP POLICY tenant_isolation ON api_keys")
    op.execute("ALTER TABLE api_keys NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE api_keys DISABLE ROW LEVEL SECURITY")
