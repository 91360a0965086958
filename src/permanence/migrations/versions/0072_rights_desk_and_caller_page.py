"""rights desk and caller page: how a request was received; one-time codes and throttle of
the public page /droits/{account}

Revision ID: 0072
Revises: 0071
Create Date: 2026-12-06 07:10:00

``rights_requests.received_via`` (phone, email, letter, in_person, web, api) for the register;
``rights_caller_codes`` (one row per code asked for on the public page, hashes only; under
row-level security) and ``rights_caller_throttle`` (counts per keyed hash of a client address
or an identifier; no account).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from permanence.db import UTCDateTime
from permanence.schema import enable_tenant_isolation

revision: str = "0072"
down_revision: str | None = "0071"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables created here whose rows belong to one account: put under row-level security.
TENANT_TABLES: list[str] = ["rights_caller_codes"]


def upgrade() -> None:
    with op.batch_alter_table("rights_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("received_via", sa.String(length=16), nullable=True))
    op.create_table(
        "rights_caller_codes",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=True),
        sa.Column("subject_id", sa.Uuid(), nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_rights_caller_codes_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_rights_caller_codes")),
    )
    with op.batch_alter_table("rights_caller_codes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_rights_caller_codes_expiry", ["account_id", "expires_at"], unique=False
        )
    op.create_table(
        "rights_caller_throttle",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("window_start", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_rights_caller_throttle")),
    )
    for table in TENANT_TABLES:
        enable_tenant_isolation(op.get_bind(), table)


def downgrade() -> None:
    op.drop_table("rights_caller_throttle")
    with op.batch_alter_table("rights_caller_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_rights_caller_codes_expiry")
    op.drop_table("rights_caller_codes")
    with op.batch_alter_table("rights_requests", schema=None) as batch_op:
        batch_op.drop_column("received_via")
