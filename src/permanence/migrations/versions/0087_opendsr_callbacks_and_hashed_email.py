"""deliveries: OpenDSR status callbacks go through the ledger (mandate_id may be NULL)

Revision ID: 0087
Revises: 0086
Create Date: 2026-12-06 13:05:00

- ``deliveries.mandate_id`` becomes nullable: an OpenDSR status callback (channel
  ``opendsr_callback``) is scheduled by a rights request, not by a mandate version; its row
  keeps the request's id in ``message_id`` and no subject id (issue 19).
- ``callers.email_sha256_bidx``: the blind index of the SHA-256 of the normalised e-mail, so
  that an OpenDSR identity ``email`` in format ``sha256`` finds its subject without opening
  every caller (the HMAC-keyed index holds no hash an outsider could look up).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from permanence.schema import enable_tenant_isolation

revision: str = "0087"
down_revision: str | None = "0086"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables created here whose rows belong to one account: put under row-level security.
TENANT_TABLES: list[str] = []


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column("mandate_id", existing_type=sa.Uuid(), nullable=True)
    with op.batch_alter_table("callers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_sha256_bidx", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_callers_account_email_sha256", ["account_id", "email_sha256_bidx"], unique=False
        )
    for table in TENANT_TABLES:
        enable_tenant_isolation(op.get_bind(), table)


def downgrade() -> None:
    with op.batch_alter_table("callers", schema=None) as batch_op:
        batch_op.drop_index("ix_callers_account_email_sha256")
        batch_op.drop_column("email_sha256_bidx")
    op.execute(
        "DELETE FROM delivery_events WHERE delivery_id IN "
        "(SELECT id FROM deliveries WHERE mandate_id IS NULL)"
    )
    op.execute("DELETE FROM deliveries WHERE mandate_id IS NULL")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column("mandate_id", existing_type=sa.Uuid(), nullable=False)
