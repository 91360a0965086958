"""account figures: the calls whose caller chose a call-back in the queue, counted apart

Revision ID: 0093
Revises: 0092
Create Date: 2026-12-06 14:30:00

``account_hourly_stats.callback_request``: the calls of the hour whose outcome is
``callback_request`` (calls.outcome; the caller pressed the mandate's call-back key). The
outcome is new with this revision: no call has it yet. Calls settled before it keep their
outcome (``abandoned``, with ``ended_reason = callback``).

The aggregates are (re)filled here from the rows already there, not in 0089: the backfill runs
the application's ``stats.aggregates.rebuild``, which writes this column too. A database
0089 filled already is recounted (the same figures, and this column).
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0093"
down_revision: str | None = "0092"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("account_hourly_stats") as batch_op:
        batch_op.add_column(
            sa.Column("callback_request", sa.Integer(), nullable=False, server_default="0")
        )
    _backfill(op.get_bind())


def _backfill(conn: sa.Connection) -> None:
    """The aggregates of the rows already there, account by account (on PostgreSQL the
    policies apply to the owner too: each account is set as the application sets it)."""
    from permanence.stats.aggregates import rebuild

    pg = conn.dialect.name == "postgresql"
    for (account_id,) in conn.execute(sa.text("SELECT id FROM accounts")).all():
        if pg:
            conn.execute(
                sa.text("SELECT set_config('app.account_id', :a, true)"), {"a": str(account_id)}
            )
        rebuild(conn, account_id if isinstance(account_id, uuid.UUID) else uuid.UUID(account_id))
    if pg:
        conn.execute(sa.text("SELECT set_config('app.account_id', '', true)"))


def downgrade() -> None:
    with op.batch_alter_table("account_hourly_stats") as batch_op:
        batch_op.drop_column("callback_request")
