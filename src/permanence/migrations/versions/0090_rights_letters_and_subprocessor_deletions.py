"""letters to the requester; sub-processors' deletion confirmations at off-boarding

Revision ID: 0090
Revises: 0091
Create Date: 2026-12-06 13:00:00

- ``rights_letters``: each letter sent to a requester (acknowledgement, extension, refusal…),
  its channel and how it went, the text sealed (tenant).
- ``subprocessor_deletions``: each sub-processor's confirmation that it deleted an off-boarded
  account's data, with date and evidence (tenant; kept after the off-boarding).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from permanence.db import UTCDateTime
from permanence.schema import enable_tenant_isolation

revision: str = "0090"
down_revision: str | None = "0091"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES: list[str] = ["rights_letters", "subprocessor_deletions"]


def upgrade() -> None:
    op.create_table(
        "rights_letters",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=64), nullable=True),
        sa.Column("text_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("sent_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_rights_letters_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["rights_requests.id"],
            name=op.f("fk_rights_letters_request_id_rights_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rights_letters")),
    )
    op.create_index(
        "ix_rights_letters_request",
        "rights_letters",
        ["account_id", "request_id", "sent_at"],
        unique=False,
    )
    op.create_table(
        "subprocessor_deletions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("subprocessor_id", sa.Uuid(), nullable=False),
        sa.Column("requested_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_on", sa.Date(), nullable=True),
        sa.Column("evidence", sa.String(length=300), nullable=True),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=True),
        sa.Column("recorded_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("recorded_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_subprocessor_deletions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subprocessor_id"],
            ["subprocessors.id"],
            name=op.f("fk_subprocessor_deletions_subprocessor_id_subprocessors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subprocessor_deletions")),
        sa.UniqueConstraint(
            "account_id",
            "subprocessor_id",
            name=op.f("uq_subprocessor_deletions_account_id_subprocessor_id"),
        ),
    )
    with op.batch_alter_table("subprocessor_deletions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subprocessor_deletions_account_id"), ["account_id"], unique=False
        )
    for table in TENANT_TABLES:
        enable_tenant_isolation(op.get_bind(), table)


def downgrade() -> None:
    with op.batch_alter_table("subprocessor_deletions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subprocessor_deletions_account_id"))
    op.drop_table("subprocessor_deletions")
    op.drop_index("ix_rights_letters_request", table_name="rights_letters")
    op.drop_table("rights_letters")
