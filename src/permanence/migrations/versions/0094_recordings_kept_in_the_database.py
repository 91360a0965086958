"""recordings kept in the database (PERMANENCE_RECORDINGS_BACKEND=postgresql, ADR 0036)

Revision ID: 0094
Revises: 0098
Create Date: 2026-12-06 16:25:47

- ``stored_files``: one row per stored file (a recording or voicemail): its storage key
  (``<account>/<recording>.pmr``), size and number of chunks (tenant).
- ``stored_file_chunks``: the file's ciphertext (the STREAM format of ``crypto.stream``, under
  the caller's key) in chunks of 256 KiB (tenant). On PostgreSQL the bytes are stored out of
  line without compression (``STORAGE EXTERNAL``): ciphertext does not compress.

Both are created on SQLite too (one schema on both backends), where they stay empty: the
backend is refused there (config.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from permanence.db import UTCDateTime
from permanence.schema import enable_tenant_isolation

revision: str = "0094"
down_revision: str | None = "0098"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables created here whose rows belong to one account: put under row-level security.
TENANT_TABLES: list[str] = ["stored_files", "stored_file_chunks"]


def upgrade() -> None:
    op.create_table(
        "stored_files",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_stored_files_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_files")),
        sa.UniqueConstraint("key", name=op.f("uq_stored_files_key")),
    )
    op.create_index("ix_stored_files_account", "stored_files", ["account_id"], unique=False)
    op.create_table(
        "stored_file_chunks",
        sa.Column("file_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_stored_file_chunks_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["stored_files.id"],
            name=op.f("fk_stored_file_chunks_file_id_stored_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("file_id", "seq", name=op.f("pk_stored_file_chunks")),
    )
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("ALTER TABLE stored_file_chunks ALTER COLUMN data SET STORAGE EXTERNAL")
        )
    for table in TENANT_TABLES:
        enable_tenant_isolation(conn, table)


def downgrade() -> None:
    op.drop_table("stored_file_chunks")
    op.drop_index("ix_stored_files_account", table_name="stored_files")
    op.drop_table("stored_files")
