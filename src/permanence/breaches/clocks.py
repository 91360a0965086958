"""The clocks of a breach. Pure: no database.

- The processor tells each controller without undue delay (Art. 33(2)); our target is 24 hours
  from awareness [design].
- The controller notifies the CNIL within 72 hours of *its* awareness (Art. 33(1)), which is at
  the latest when we tell it. Until we have told it, the earliest possible end of that clock —
  our awareness plus 72 hours — is the one to watch.
Hours, not working days: both run through nights, weekends and public holidays.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

CONTROLLER_TARGET = dt.timedelta(hours=24)
CNIL_DEADLINE = dt.timedelta(hours=72)


@dataclass(frozen=True)
class Clock:
    code: str
    due_at: dt.datetime
    met_at: dt.datetime | None

    def remaining(self, now: dt.datetime) -> dt.timedelta:
        return self.due_at - now

    def overdue(self, now: dt.datetime) -> bool:
        """Not met and past due, or met late."""
        if self.met_at is not None:
            return self.met_at > self.due_at
        return now > self.due_at

    def state(self, now: dt.datetime) -> str:
        if self.met_at is not None:
            return "met_late" if self.met_at > self.due_at else "met"
        return "overdue" if now > self.due_at else "running"


def controller_clock(aware_at: dt.datetime, notified_at: dt.datetime | None) -> Clock:
    """Processor → controller: target 24 h after awareness."""
    return Clock("controller_24h", aware_at + CONTROLLER_TARGET, notified_at)


def cnil_clock(aware_at: dt.datetime, controller_notified_at: dt.datetime | None) -> Clock:
    """The controller's 72 hours to the CNIL, from when it was told (or could first be told).

    ``met_at`` is never set here: the CNIL notification is the controller's act, not ours.
    """
    start = controller_notified_at or aware_at
    return Clock("cnil_72h", start + CNIL_DEADLINE, None)
