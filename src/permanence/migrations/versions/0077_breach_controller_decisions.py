"""breaches: each controller's Art. 34 decision, unintelligible data; sub-processor hosts

Revision ID: 0077
Revises: 0075
Create Date: 2026-12-06 07:30:00

- ``breach_accounts`` gets the controller's own Art. 34 decision (recorded by its client
  user from the portal: the provider never decides for it).
- ``breaches.unintelligible``: the Art. 34(3)(a) exception is only open when the data that
  left was unintelligible to whoever had it.
- ``subprocessors.host``: the endpoint a configured service (telephony, SMS, SMTP, backup
  storage) is matched to its sub-processor by.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from permanence.db import UTCDateTime
from permanence.schema import enable_tenant_isolation

revision: str = "0077"
down_revision: str | None = "0075"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables created here whose rows belong to one account: put under row-level security.
TENANT_TABLES: list[str] = []


def upgrade() -> None:
    with op.batch_alter_table("breach_accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "subjects_decision",
                sa.String(length=16),
                server_default="pending",
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("subjects_reason", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("subjects_decided_at", UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("subjects_decided_by", sa.Uuid(), nullable=True))
    with op.batch_alter_table("breaches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unintelligible", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("subprocessors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host", sa.String(length=200), nullable=True))
    for table in TENANT_TABLES:
        enable_tenant_isolation(op.get_bind(), table)


def downgrade() -> None:
    with op.batch_alter_table("subprocessors", schema=None) as batch_op:
        batch_op.drop_column("host")
    with op.batch_alter_table("breaches", schema=None) as batch_op:
        batch_op.drop_column("unintelligible")
    with op.batch_alter_table("breach_accounts", schema=None) as batch_op:
        batch_op.drop_column("subjects_decided_by")
        batch_op.drop_column("subjects_decided_at")
        batch_op.drop_column("subjects_reason")
        batch_op.drop_column("subjects_decision")
