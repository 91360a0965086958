"""The decision taken when a call arrives, before any queue (docs/telephony.md, ADR 0022).

``decide(mandate, now)`` is the one place that reads the mandate's ``hours``, ``after_hours``
and ``on_call``: in hours, the call goes to the in-hours leg (today the operators' ``<Dial>``);
out of hours, to the after-hours greeting and voicemail, to the on-call contact in force, or
to the in-hours leg all the same for a 24/7 client (``answer``), counted as after hours.

Moved from ``routing.hours`` (ADR 0037): what it decides is a value of ``calls.routing``, which
the voice webhooks (``telephony``), the queue (``routing``) and the statistics all read, so it
sits with the calls, below them all.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from permanence.db import utcnow
from permanence.mandates.hours import AfterHoursAction
from permanence.mandates.oncall import on_call_now
from permanence.mandates.schema import Mandate

# What a call records in ``calls.routing`` (the statistics count the ``after_hours_*`` ones).
IN_HOURS: Final = "in_hours"
AFTER_HOURS_VOICEMAIL: Final = "after_hours_voicemail"
AFTER_HOURS_FORWARD: Final = "after_hours_forward"
AFTER_HOURS_ANSWER: Final = "after_hours_answer"
# Not an arrival: a call-back placed by an operator (routing.callbacks, calls.direction).
OUTBOUND: Final = "outbound"
ROUTINGS: Final = (IN_HOURS, AFTER_HOURS_VOICEMAIL, AFTER_HOURS_FORWARD, AFTER_HOURS_ANSWER)
AFTER_HOURS: Final = (AFTER_HOURS_VOICEMAIL, AFTER_HOURS_FORWARD, AFTER_HOURS_ANSWER)


def clock() -> dt.datetime:
    """The moment a call arrives (the tests pin it; a module attribute, so it can be)."""
    return utcnow()


@dataclass(frozen=True)
class Decision:
    """Where a call goes. ``reason``: ``always`` (no hours declared), ``schedule``,
    ``holiday`` or ``exception`` (what made it open or closed); ``no_on_call`` when a
    forward found nobody in force and fell back to voicemail."""

    routing: str
    reason: str
    contact: int | None = None  # index into mandate.on_call.contacts when forwarding

    @property
    def in_hours_leg(self) -> bool:
        """Whether the call goes to the operators, as in hours."""
        return self.routing in (IN_HOURS, AFTER_HOURS_ANSWER)

    @property
    def after_hours(self) -> bool:
        return self.routing != IN_HOURS


def decide(mandate: Mandate, now: dt.datetime) -> Decision:
    """Where a call arriving at ``now`` (aware) goes, by the mandate's hours."""
    hours = mandate.hours
    if hours is None:
        return Decision(IN_HOURS, "always")
    is_open, reason, _holiday = hours.status(now)
    if is_open:
        return Decision(IN_HOURS, reason)
    action = mandate.after_hours.action if mandate.after_hours else AfterHoursAction.VOICEMAIL
    if action is AfterHoursAction.ANSWER:
        return Decision(AFTER_HOURS_ANSWER, reason)
    if action is AfterHoursAction.FORWARD and mandate.on_call is not None:
        index = on_call_now(mandate, now)
        if index is not None:
            return Decision(AFTER_HOURS_FORWARD, reason, index)
        return Decision(AFTER_HOURS_VOICEMAIL, "no_on_call")
    return Decision(AFTER_HOURS_VOICEMAIL, reason)
