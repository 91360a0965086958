"""calls: the decision taken when the call arrived (opening hours, after hours, on call)

Revision ID: 0082
Revises: 0081
Create Date: 2026-12-06 10:20:00

- ``calls.routing``: ``in_hours``, ``after_hours_voicemail``, ``after_hours_forward`` or
  ``after_hours_answer`` (``routing.hours.decide``); empty for earlier calls.
- ``calls.routing_contact``: the index of the on-call contact a forwarded call went to, in
  the call's mandate version (never the number itself).
- ``ix_calls_account_stats`` also covers ``routing``, so the statistics count after-hours
  calls in their one index-only pass (docs/statistics.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from permanence.schema import enable_tenant_isolation

revision: str = "0082"
down_revision: str | None = "0081"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables created here whose rows belong to one account: put under row-level security.
TENANT_TABLES: list[str] = []
# The statistics' covering index as migration 0073 left it.
STATS_COLUMNS = [
    "account_id",
    "started_at",
    "status",
    "outcome",
    "answered_at",
    "ended_at",
    "talk_s",
]


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("routing", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("routing_contact", sa.SmallInteger(), nullable=True))
        batch_op.drop_index("ix_calls_account_stats")
        batch_op.create_index("ix_calls_account_stats", [*STATS_COLUMNS, "routing"], unique=False)
    for table in TENANT_TABLES:
        enable_tenant_isolation(op.get_bind(), table)


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_account_stats")
        batch_op.create_index("ix_calls_account_stats", STATS_COLUMNS, unique=False)
        batch_op.drop_column("routing_contact")
        batch_op.drop_column("routing")
