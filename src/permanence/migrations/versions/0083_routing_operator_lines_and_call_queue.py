"""routing: operators' lines (devices) and the dispatcher's view of the provider queue

Revision ID: 0083
Revises: 0082
Create Date: 2026-12-06 10:00:00

- ``operator_lines``: each staff member's device (``client:``, ``sip:`` or E.164).
- ``call_queue``: one row per call in the provider's queue (state, priority, the operator
  offered, the operator's leg). Provider switching data with no personal data, outside
  row-level security like ``operator_presence`` (ADR 0023).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from permanence.db import UTCDateTime
from permanence.schema import enable_tenant_isolation

revision: str = "0083"
down_revision: str | None = "0082"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables created here whose rows belong to one account: put under row-level security.
TENANT_TABLES: list[str] = []


def upgrade() -> None:
    op.create_table(
        "operator_lines",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("device", sa.String(length=200), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_operator_lines_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_operator_lines")),
        info={"shared_registry": True},
    )
    op.create_table(
        "call_queue",
        sa.Column("call_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("caller_sid", sa.String(length=64), nullable=False),
        sa.Column("queue_name", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("enqueued_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("operator_id", sa.Uuid(), nullable=True),
        sa.Column("offer_sid", sa.String(length=64), nullable=True),
        sa.Column("offer_status", sa.String(length=16), nullable=True),
        sa.Column("offered_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("connected_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("left_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("result", sa.String(length=16), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("tried", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_call_queue_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_call_queue_call_id_calls"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["users.id"],
            name=op.f("fk_call_queue_operator_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_call_queue")),
        sa.UniqueConstraint("caller_sid", name=op.f("uq_call_queue_caller_sid")),
        sa.UniqueConstraint("offer_sid", name=op.f("uq_call_queue_offer_sid")),
        info={"shared_registry": True},
    )
    with op.batch_alter_table("call_queue", schema=None) as batch_op:
        batch_op.create_index(
            "ix_call_queue_waiting", ["state", "priority", "enqueued_at"], unique=False
        )
        batch_op.create_index("ix_call_queue_operator", ["operator_id", "state"], unique=False)
    for table in TENANT_TABLES:
        enable_tenant_isolation(op.get_bind(), table)


def downgrade() -> None:
    with op.batch_alter_table("call_queue", schema=None) as batch_op:
        batch_op.drop_index("ix_call_queue_operator")
        batch_op.drop_index("ix_call_queue_waiting")
    op.drop_table("call_queue")
    op.drop_table("operator_lines")
