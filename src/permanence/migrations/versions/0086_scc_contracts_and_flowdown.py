"""contracts on the Commission's SCC: signed documents, clause 7.7 holds, flow-down agreements;
DPIAs

Revision ID: 0086
Revises: 0083
Create Date: 2026-12-06 10:00:00

- ``contracts.template``: "scc-2021/915" when generated on Decision (EU) 2021/915.
- ``contract_documents``: each signed version's PDF, SHA-256, date and signatories (tenant).
- ``subprocessor_notices.resolved_at`` / ``resolution``: an objection holds a change for that
  client until resolved (clause 7.7(a)).
- ``subprocessor_agreements``: the flow-down contract of each sub-processor (Art. 28(4)).
- ``dpias``: versioned DPIAs (Art. 35) per account and processing (tenant).
- ``operator_assignments`` / ``break_glass_accesses``: need-to-know for health data (tenant).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from permanence.db import UTCDateTime
from permanence.schema import enable_tenant_isolation

revision: str = "0086"
down_revision: str | None = "0083"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables created here whose rows belong to one account: put under row-level security.
TENANT_TABLES: list[str] = [
    "contract_documents",
    "dpias",
    "operator_assignments",
    "break_glass_accesses",
]


def upgrade() -> None:
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("template", sa.String(length=32), nullable=True))
    with op.batch_alter_table("subprocessor_notices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resolved_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resolution", sa.String(length=16), nullable=True))
    op.create_table(
        "contract_documents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("signed_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("signatories", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("stored_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("stored_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_contract_documents_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_contract_documents_contract_id_contracts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_documents")),
        sa.UniqueConstraint("contract_id", name=op.f("uq_contract_documents_contract_id")),
    )
    with op.batch_alter_table("contract_documents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contract_documents_account_id"), ["account_id"], unique=False
        )
    op.create_table(
        "subprocessor_agreements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subprocessor_id", sa.Uuid(), nullable=False),
        sa.Column("reference", sa.String(length=120), nullable=False),
        sa.Column("signed_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("covers", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("recorded_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subprocessor_id"],
            ["subprocessors.id"],
            name=op.f("fk_subprocessor_agreements_subprocessor_id_subprocessors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subprocessor_agreements")),
    )
    with op.batch_alter_table("subprocessor_agreements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subprocessor_agreements_subprocessor_id"),
            ["subprocessor_id"],
            unique=False,
        )
    op.create_table(
        "dpias",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("processing", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("mandate_version", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("validated_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("validated_by", sa.Uuid(), nullable=True),
        sa.Column("dpo_opinion", sa.Text(), nullable=True),
        sa.Column("client_opinion", sa.Text(), nullable=True),
        sa.Column("client_opinion_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_dpias_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dpias")),
        sa.UniqueConstraint(
            "account_id",
            "processing",
            "version",
            name=op.f("uq_dpias_account_id_processing_version"),
        ),
    )
    with op.batch_alter_table("dpias", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dpias_account_id"), ["account_id"], unique=False)
    op.create_table(
        "operator_assignments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("assigned_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("assigned_by", sa.Uuid(), nullable=True),
        sa.Column("ended_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_operator_assignments_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_operator_assignments_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_assignments")),
    )
    op.create_index(
        "ix_operator_assignments_account_user",
        "operator_assignments",
        ["account_id", "user_id"],
        unique=False,
    )
    op.create_table(
        "break_glass_accesses",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("caller_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("opened_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_break_glass_accesses_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["caller_id"],
            ["callers.id"],
            name=op.f("fk_break_glass_accesses_caller_id_callers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_break_glass_accesses_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_break_glass_accesses")),
    )
    op.create_index(
        "ix_break_glass_accesses_account_user_caller",
        "break_glass_accesses",
        ["account_id", "user_id", "caller_id"],
        unique=False,
    )
    for table in TENANT_TABLES:
        enable_tenant_isolation(op.get_bind(), table)


def downgrade() -> None:
    op.drop_index("ix_break_glass_accesses_account_user_caller", table_name="break_glass_accesses")
    op.drop_table("break_glass_accesses")
    op.drop_index("ix_operator_assignments_account_user", table_name="operator_assignments")
    op.drop_table("operator_assignments")
    with op.batch_alter_table("dpias", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dpias_account_id"))
    op.drop_table("dpias")
    with op.batch_alter_table("subprocessor_agreements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subprocessor_agreements_subprocessor_id"))
    op.drop_table("subprocessor_agreements")
    with op.batch_alter_table("contract_documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contract_documents_account_id"))
    op.drop_table("contract_documents")
    with op.batch_alter_table("subprocessor_notices", schema=None) as batch_op:
        batch_op.drop_column("resolution")
        batch_op.drop_column("resolved_at")
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.drop_column("template")
