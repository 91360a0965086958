"""call_queue: an index on the entry's result

Revision ID: 0098
Revises: 0093
Create Date: 2026-12-06 16:50:00

The console's list of call-backs to make (``result = 'requested'``, oldest first) and the
dispatcher's call-back offers (``result = 'offered'``) looked entries up by ``result``, which no
index covered: each read the whole queue history, which keeps one row per queued call.
``ix_call_queue_result (result, left_at)`` serves both (tests/web/test_query_plans.py).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0098"
down_revision: str | None = "0093"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables created here whose rows belong to one account: put under row-level security.
TENANT_TABLES: list[str] = []


def upgrade() -> None:
    op.create_index("ix_call_queue_result", "call_queue", ["result", "left_at"])


def downgrade() -> None:
    op.drop_index("ix_call_queue_result", table_name="call_queue")
