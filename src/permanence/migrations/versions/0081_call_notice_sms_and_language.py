"""calls: the second-layer notice sent by SMS (which version, when) and the caller's language

Revision ID: 0081
Revises: 0077
Create Date: 2026-12-06 08:40:00

- ``calls.notice_sms_at`` / ``calls.notice_sms_version``: when the full notice was sent to the
  caller by SMS, and which mandate version's notice it was (the ledger row holds the attempts).
- ``calls.language``: the language the caller chose at the start of the call (``fr``/``en``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from permanence.db import UTCDateTime
from permanence.schema import enable_tenant_isolation

revision: str = "0081"
down_revision: str | None = "0077"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables created here whose rows belong to one account: put under row-level security.
TENANT_TABLES: list[str] = []


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notice_sms_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("notice_sms_version", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("language", sa.String(length=8), server_default="fr", nullable=False)
        )
    for table in TENANT_TABLES:
        enable_tenant_isolation(op.get_bind(), table)


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("language")
        batch_op.drop_column("notice_sms_version")
        batch_op.drop_column("notice_sms_at")
