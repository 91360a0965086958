"""What the contracts (``service``) and the sub-processor register (``subprocessors``) share:
who manages them."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from permanence.context import Role
from permanence.db import ctx_of
from permanence.errors import PermissionDenied

STAFF_DESK = frozenset({Role.DPO, Role.ADMIN, Role.SYSTEM})


def _desk(session: Session) -> uuid.UUID | None:
    ctx = ctx_of(session)
    if ctx.role not in STAFF_DESK:
        raise PermissionDenied("contracts and sub-processors are managed by the DPO")
    return ctx.actor_id
