"""The access context: who acts, in which role, for which client account, and why.

Every service call takes one. It is what row-level security, object-level checks and the audit
log are keyed on, so no use case can run "anonymously".
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, replace


class Role(enum.StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    DPO = "dpo"
    ADMIN = "admin"
    CLIENT = "client"
    SYSTEM = "system"


STAFF_ROLES = frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.DPO, Role.ADMIN})


@dataclass(frozen=True, slots=True)
class AccessContext:
    role: Role
    reason: str
    actor_id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None
    # Set when an API key acts (actor_id is then None: no person): the audit log names the
    # key by its id and name (docs/adr/0013).
    api_key_id: uuid.UUID | None = None
    api_key_name: str | None = None

    def for_account(self, account_id: uuid.UUID) -> AccessContext:
        """The same actor acting on one account (a staff member serves many accounts)."""
        return replace(self, account_id=account_id)

    def because(self, reason: str) -> AccessContext:
        return replace(self, reason=reason)

    @classmethod
    def system(cls, reason: str, account_id: uuid.UUID | None = None) -> AccessContext:
        return cls(role=Role.SYSTEM, reason=reason, account_id=account_id)

    def require_account(self) -> uuid.UUID:
        if self.account_id is None:
            from permanence.errors import PermissionDenied

            raise PermissionDenied("this action needs a client account in the access context")
        return self.account_id
