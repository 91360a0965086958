"""erasure epochs: subject keys wrapped under an epoch key kept outside the database

Revision ID: 0088
Revises: 0090
Create Date: 2026-12-06 13:00:00

- ``subject_keys.epoch``: the erasure epoch whose key wraps ``wrapped_dek`` (0: none yet; the
  first rotation wraps every row, ADR 0029).
- ``key_epochs``: the epochs (their keys are in the epoch file, never here). Not a tenant
  table: it holds numbers and times, no account's data.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from permanence.db import UTCDateTime

revision: str = "0088"
down_revision: str | None = "0090"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES: list[str] = []


def upgrade() -> None:
    with op.batch_alter_table("subject_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("epoch", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index(
            "ix_subject_keys_account_id_epoch", ["account_id", "epoch"], unique=False
        )
    op.create_table(
        "key_epochs",
        sa.Column("epoch", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("retired_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("destroyed_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("epoch", name=op.f("pk_key_epochs")),
    )


def downgrade() -> None:
    if _wrapped_keys(op.get_bind()):
        # Their outer layer needs the epoch key: dropping the column would lose every caller.
        raise RuntimeError(
            "subject keys are wrapped under erasure epochs: this release cannot go below 0088"
        )
    op.drop_table("key_epochs")
    with op.batch_alter_table("subject_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_subject_keys_account_id_epoch")
        batch_op.drop_column("epoch")


def _wrapped_keys(conn: sa.Connection) -> bool:
    """Whether any subject key carries the epoch layer (epoch 0 means none). subject_keys is
    under row-level security on PostgreSQL: each account is looked at under its own id. An
    epoch that exists but wraps no key (a runtime started, no caller yet) does not hold the
    downgrade back."""
    postgres = conn.dialect.name == "postgresql"
    for (account_id,) in conn.execute(sa.text("SELECT id FROM accounts")).all():
        if postgres:
            conn.execute(
                sa.text("SELECT set_config('app.account_id', :a, true)"), {"a": str(account_id)}
            )
        found = conn.execute(
            sa.text("SELECT 1 FROM subject_keys WHERE account_id = :a AND epoch > 0 LIMIT 1"),
            {"a": account_id},
        ).first()
        if found is not None:
            return True
    if postgres:
        conn.execute(sa.text("SELECT set_config('app.account_id', '', true)"))
    return False
