"""call_queue: the consultation leg of a warm transfer

Revision ID: 0091
Revises: 0087
Create Date: 2026-12-06 13:30:00

- ``call_queue.consult_sid``: the call placed to the mandate's contact while the caller holds
  (routing.transfers, ADR 0030); ``consult_target``: that contact's index in the mandate
  (never the number). The table stays outside row-level security (ADR 0023).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from permanence.schema import enable_tenant_isolation

revision: str = "0091"
down_revision: str | None = "0087"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables created here whose rows belong to one account: put under row-level security.
TENANT_TABLES: list[str] = []


def upgrade() -> None:
    with op.batch_alter_table("call_queue", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consult_sid", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("consult_target", sa.SmallInteger(), nullable=True))
    for table in TENANT_TABLES:
        enable_tenant_isolation(op.get_bind(), table)


def downgrade() -> None:
    with op.batch_alter_table("call_queue", schema=None) as batch_op:
        batch_op.drop_column("consult_target")
        batch_op.drop_column("consult_sid")
