"""One verified webhook request of the voice provider (its form and query), the system context
webhooks act in, and the call our follow-up URLs name. Split from ``telephony.service``
(ADR 0037); the routing webhooks use them too."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from permanence.calls.model import Call
from permanence.context import AccessContext
from permanence.db import switch_account
from permanence.errors import NotFound, ValidationFailed

_SID = re.compile(r"^[A-Za-z0-9:_\-]{2,64}$")
PROVIDERS = ("twilio", "telnyx")


@dataclass(frozen=True)
class Webhook:
    """One verified webhook request: its provider, form fields and query parameters."""

    provider: str
    form: Mapping[str, str]
    query: Mapping[str, str]

    def get(self, name: str) -> str | None:
        value = self.form.get(name)
        return value if value else None

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise ValidationFailed(f"the webhook has no {name}")
        return value

    def sid(self, name: str) -> str:
        value = self.require(name)
        if not _SID.match(value):
            raise ValidationFailed(f"{name} is not a valid identifier")
        return value

    def seconds(self, name: str) -> int | None:
        value = self.get(name)
        if value is None:
            return None
        if not value.isdigit() or len(value) > 7:
            raise ValidationFailed(f"{name} must be a whole number of seconds")
        return int(value)

    def query_uuid(self, name: str) -> uuid.UUID:
        try:
            return uuid.UUID(self.query.get(name, ""))
        except ValueError:
            raise ValidationFailed(f"the callback URL has no valid '{name}' parameter") from None


def webhook_context(provider: str) -> AccessContext:
    return AccessContext.system(f"telephony:{provider}")


def call_from_query(session: Session, hook: Webhook) -> Call:
    """The call named by our follow-up URL, checked against the provider's CallSid."""
    account_id = hook.query_uuid("a")
    switch_account(session, account_id)
    call = session.get(Call, hook.query_uuid("c"))
    if call is None or call.account_id != account_id or call.provider_sid != hook.sid("CallSid"):
        raise NotFound("no such call")
    return call
