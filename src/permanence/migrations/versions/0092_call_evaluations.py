"""call evaluation grids

Revision ID: 0092
Revises: 0089
Create Date: 2026-12-06 14:00:00

- ``evaluations``: a supervisor's grid of one answered, recorded call (issue 22): five
  criteria scored 0-2, a screened comment, the operator, the evaluator, the call and its
  mandate version (tenant; deleted by the retention sweep after the mandate's ``evaluation``
  period, at most 1 year).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from permanence.db import UTCDateTime
from permanence.schema import enable_tenant_isolation

revision: str = "0092"
down_revision: str | None = "0089"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables created here whose rows belong to one account: put under row-level security.
TENANT_TABLES: list[str] = ["evaluations"]


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("call_id", sa.Uuid(), nullable=False),
        sa.Column("mandate_id", sa.Uuid(), nullable=False),
        sa.Column("operator_id", sa.Uuid(), nullable=False),
        sa.Column("evaluator_id", sa.Uuid(), nullable=False),
        sa.Column("greeting", sa.SmallInteger(), nullable=False),
        sa.Column("identification", sa.SmallInteger(), nullable=False),
        sa.Column("accuracy", sa.SmallInteger(), nullable=False),
        sa.Column("courtesy", sa.SmallInteger(), nullable=False),
        sa.Column("instructions", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_evaluations_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mandate_id"], ["mandates.id"], name=op.f("fk_evaluations_mandate_id_mandates")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_evaluations_account_created", ["account_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_evaluations_operator", ["operator_id"], unique=False)
    for table in TENANT_TABLES:
        enable_tenant_isolation(op.get_bind(), table)


def downgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluations_operator")
        batch_op.drop_index("ix_evaluations_account_created")
    op.drop_table("evaluations")
