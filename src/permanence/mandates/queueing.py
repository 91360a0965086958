"""The mandate's queue settings (``queue:``): how long a caller may wait for an operator,
and whether the account is served first. Read by ``permanence.routing`` (docs/telephony.md,
"The queue")."""

from __future__ import annotations

import pydantic


class Queueing(pydantic.BaseModel):
    """``queue:`` in a mandate. Past ``max_wait_seconds`` the caller is offered voicemail;
    a ``priority`` account's callers are offered to operators before any other's."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    priority: bool = False
    max_wait_seconds: int = pydantic.Field(default=180, ge=30, le=1800)
