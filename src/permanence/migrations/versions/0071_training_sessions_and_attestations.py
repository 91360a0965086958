"""training sessions: trainer, duration and an encrypted attestation

Revision ID: 0071
Revises: 0070
Create Date: 2026-12-06 07:20:00.000000

Onboarding (issue 18, part 1): a training completion records who gave the session and how
long it lasted, and may point to the session's attestation (a PDF or image stored encrypted
under ``DATA_DIR/training``; the row holds its storage key, type and size only).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from permanence.db import UTCDateTime
from permanence.schema import enable_tenant_isolation

revision: str = "0071"
down_revision: str | None = "0070"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables created here whose rows belong to one account: put under row-level security.
TENANT_TABLES: list[str] = []


def upgrade() -> None:
    op.create_table(
        "training_attestations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_attestations")),
        info={"shared_registry": True},
    )
    with op.batch_alter_table("staff_training", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trainer", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("duration_minutes", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("attestation_id", sa.Uuid(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_staff_training_attestation_id"), ["attestation_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_staff_training_attestation_id_training_attestations"),
            "training_attestations",
            ["attestation_id"],
            ["id"],
            ondelete="SET NULL",
        )
    for table in TENANT_TABLES:
        enable_tenant_isolation(op.get_bind(), table)


def downgrade() -> None:
    # The attestation files stay on disk, unreadable by the older revision (their rows go).
    with op.batch_alter_table("staff_training", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_staff_training_attestation_id_training_attestations"),
            type_="foreignkey",
        )
        batch_op.drop_index(batch_op.f("ix_staff_training_attestation_id"))
        batch_op.drop_column("attestation_id")
        batch_op.drop_column("duration_minutes")
        batch_op.drop_column("trainer")
    op.drop_table("training_attestations")
