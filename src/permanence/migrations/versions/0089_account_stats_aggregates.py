"""account figures' aggregates: per account and UTC hour, answered calls per second of answer

Revision ID: 0089
Revises: 0088
Create Date: 2026-12-06 13:30:00

- ``account_hourly_stats``: every sum the account figures are made of, per account and UTC
  hour, with its Paris day and hour of the day (tenant).
- ``account_answer_seconds``: answered calls per account, Paris day and whole second of answer
  time, for the 90th percentile (tenant).
Both are filled here from the existing rows (``stats.aggregates.rebuild``, account by account
under row-level security on PostgreSQL) and then kept equal to the rows by the application
(ADR 0032).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from permanence.db import UTCDateTime
from permanence.schema import enable_tenant_isolation

revision: str = "0089"
down_revision: str | None = "0088"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES: list[str] = ["account_hourly_stats", "account_answer_seconds"]


def upgrade() -> None:
    op.create_table(
        "account_hourly_stats",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("hour", UTCDateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour_of_day", sa.Integer(), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("abandoned", sa.Integer(), nullable=False),
        sa.Column("voicemail", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("expired", sa.Integer(), nullable=False),
        sa.Column("transferred", sa.Integer(), nullable=False),
        sa.Column("answer_s", sa.Float(), nullable=False),
        sa.Column("talk_s", sa.Float(), nullable=False),
        sa.Column("talked", sa.Integer(), nullable=False),
        sa.Column("waited_s", sa.Float(), nullable=False),
        sa.Column("waited", sa.Integer(), nullable=False),
        sa.Column("answer_le10", sa.Integer(), nullable=False),
        sa.Column("answer_le20", sa.Integer(), nullable=False),
        sa.Column("answer_le30", sa.Integer(), nullable=False),
        sa.Column("answer_le60", sa.Integer(), nullable=False),
        sa.Column("answer_gt60", sa.Integer(), nullable=False),
        sa.Column("abandon_le10", sa.Integer(), nullable=False),
        sa.Column("abandon_le30", sa.Integer(), nullable=False),
        sa.Column("abandon_le60", sa.Integer(), nullable=False),
        sa.Column("abandon_gt60", sa.Integer(), nullable=False),
        sa.Column("after_hours_voicemail", sa.Integer(), nullable=False),
        sa.Column("after_hours_forward", sa.Integer(), nullable=False),
        sa.Column("after_hours_answer", sa.Integer(), nullable=False),
        sa.Column("outbound", sa.Integer(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("messages_unacknowledged", sa.Integer(), nullable=False),
        sa.Column("appointments", sa.Integer(), nullable=False),
        sa.Column("appointments_cancelled", sa.Integer(), nullable=False),
        sa.Column("recordings", sa.Integer(), nullable=False),
        sa.Column("recording_s", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_hourly_stats_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "hour", name=op.f("pk_account_hourly_stats")),
    )
    op.create_index(
        "ix_account_hourly_stats_day", "account_hourly_stats", ["account_id", "day"], unique=False
    )
    op.create_table(
        "account_answer_seconds",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_answer_seconds_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "account_id", "day", "seconds", name=op.f("pk_account_answer_seconds")
        ),
    )
    conn = op.get_bind()
    for table in TENANT_TABLES:
        enable_tenant_isolation(conn, table)
    # Filled by 0093, once the table has every column the application's rebuild writes
    # (``rebuild`` is today's code: run here, it would write 0093's column before it exists).


def downgrade() -> None:
    op.drop_table("account_answer_seconds")
    op.drop_index("ix_account_hourly_stats_day", table_name="account_hourly_stats")
    op.drop_table("account_hourly_stats")
