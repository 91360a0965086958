"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import permanence.db
from permanence.schema import enable_tenant_isolation
${imports if imports else ""}
revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}

# Tables created here whose rows belong to one account: put under row-level security.
TENANT_TABLES: list[str] = []


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}
    for table in TENANT_TABLES:
        enable_tenant_isolation(op.get_bind(), table)


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
