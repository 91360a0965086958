"""Who is on call, and when: the mandate's on-call rota read in the mandate's zone
(docs/mandates.md, docs/telephony.md, ADR 0022).

Pure module, like ``hours``: no database, no web. ``on_call_now`` is the one reading of the
rota; the arrival decision, the console and the escalation of messages all call it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from permanence.mandates.hours import WEEKDAYS

if TYPE_CHECKING:
    from permanence.mandates.mandate import Mandate
    from permanence.mandates.sections import OnCallContact

PARIS = ZoneInfo("Europe/Paris")


def mandate_zone(mandate: Mandate) -> ZoneInfo:
    """The zone the mandate's wall-clock times are read in (its hours and its on-call rota):
    ``hours.timezone``, else Europe/Paris when the mandate declares no hours."""
    return mandate.hours.zone if mandate.hours is not None else PARIS


def on_call_now(mandate: Mandate, at: dt.datetime) -> int | None:
    """Index of the mandate's on-call contact in force at ``at`` (aware), or None.

    The one reading of the rota: the arrival decision (``calls.hours.decide``), the
    console's instructions and the escalation of unacknowledged messages all call it, so a
    mandate in another zone (the Antilles, Réunion) is read in that zone everywhere."""
    if mandate.on_call is None:
        return None
    return contact_in_force(mandate.on_call.contacts, at, mandate_zone(mandate))


def next_on_call_start(mandate: Mandate, at: dt.datetime) -> dt.datetime | None:
    """The earliest moment after ``at`` when one of the rota's windows opens (UTC), in the
    mandate's zone; None without an on-call list. Ignores ``days`` and validity: the caller
    asks ``on_call_now`` again then (ADR 0022)."""
    if mandate.on_call is None:
        return None
    zone = mandate_zone(mandate)
    local = at.astimezone(zone)
    starts = []
    for contact in mandate.on_call.contacts:
        for days in (0, 1):
            day = local.date() + dt.timedelta(days=days)
            start = dt.datetime.combine(day, contact.starts, tzinfo=zone)
            if start > local:
                starts.append(start)
                break
    return min(starts).astimezone(dt.UTC)


def contact_in_force(
    contacts: Sequence[OnCallContact], now: dt.datetime, zone: ZoneInfo
) -> int | None:
    """Index of the first on-call contact in force at ``now``, or None.

    A contact's window (``from``..``to``, past midnight when ``to`` is earlier) belongs to
    the day it starts on: that day must be one of its ``days`` (all days when absent) and
    inside its validity (``valid_from``..``valid_until``, inclusive, when given).
    """
    local = now.astimezone(zone)
    moment = local.time()
    for i, contact in enumerate(contacts):
        if not contact.covers(moment):
            continue
        started = local.date()
        if contact.starts > contact.ends and moment < contact.ends:
            started -= dt.timedelta(days=1)  # in the part after midnight
        if contact.days and WEEKDAYS[started.weekday()] not in contact.days:
            continue
        if contact.valid_from is not None and started < contact.valid_from:
            continue
        if contact.valid_until is not None and started > contact.valid_until:
            continue
        return i
    return None
