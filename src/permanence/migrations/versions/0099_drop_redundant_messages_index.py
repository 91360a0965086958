"""messages: drop ix_messages_account_created, a prefix of ix_messages_account_created_ack

Revision ID: 0099
Revises: 0094
Create Date: 2026-12-06 22:55:00

``ix_messages_account_created (account_id, created_at)`` (0001) is the leading part of
``ix_messages_account_created_ack (account_id, created_at, acknowledged_at)`` (0060): same
columns, same order, both plain ascending b-trees, neither unique nor partial. Every query
that could use the first can use the second: the portal's inbox and the console's message
list (account, newest first), the export (account, oldest first), the metrics' and the
statistics' counts over a period, the retention sweep (account, due by creation), and the
cascade from ``accounts``. EXPLAIN QUERY PLAN (SQLite) and EXPLAIN (PostgreSQL) of those
queries on 100,000 messages give the same plans on the longer index once the shorter is
gone (docs/performance.md); SQLite already chose the longer one. One index fewer to write on
each message taken. The downgrade creates it again.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0099"
down_revision: str | None = "0094"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables created here whose rows belong to one account: put under row-level security.
TENANT_TABLES: list[str] = []


def upgrade() -> None:
    op.drop_index("ix_messages_account_created", table_name="messages")


def downgrade() -> None:
    op.create_index("ix_messages_account_created", "messages", ["account_id", "created_at"])
