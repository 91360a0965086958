"""The mandate's queue settings (``queue:``): how long a caller may wait for an operator,
whether the account is served first, and the key a caller presses to be called back instead
of waiting. Read by ``permanence.routing`` (docs/telephony.md,
"The queue")."""

from __future__ import annotations

import pydantic


class Queueing(pydantic.BaseModel):
    """``queue:`` in a mandate. Past ``max_wait_seconds`` the caller is offered voicemail;
    a ``priority`` account's callers are offered to operators before any other's; with a
    ``callback_key`` the waiting music offers a call-back (the caller presses that key, leaves
    the queue, and the console lists the call-back to make)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    priority: bool = False
    max_wait_seconds: int = pydantic.Field(default=180, ge=30, le=1800)
    callback_key: str | None = pydantic.Field(
        default=None, pattern=r"^[0-9*#]$", description="one telephone key: 0-9, * or #"
    )
