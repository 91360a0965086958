"""The Art. 12(3) clock, pure (no database).

- Due one calendar month after receipt: the same day number, or the last day of a shorter
  month (31 January -> 28 or 29 February).
- A period ending on a Saturday, a Sunday or a French public holiday ends on the next working
  day (Regulation (EEC, Euratom) 1182/71, Art. 3(4), applied by the EDPB access guidelines).
- One extension by two further months: due three months after receipt by the same rules,
  granted only before the first due date, with a reason sent to the requester.

Days are counted in France (Europe/Paris): a request received at 00:30 in Paris on 1 March
was received on 1 March, whatever the UTC date. The period ends at the end of its last day.
"""

from __future__ import annotations

import calendar
import datetime as dt
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    import holidays

PARIS = ZoneInfo("Europe/Paris")
FIRST_PERIOD_MONTHS = 1
EXTENDED_PERIOD_MONTHS = 3
# Reminders to the controller start this many days before the due date.
REMINDER_WINDOW_DAYS = 7


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day number ``months`` later, or the last day of a shorter month."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return dt.date(year, month, min(day.day, last))


@lru_cache(maxsize=64)  # pragma: no mutate (a cache: its size or absence changes no result)
def _holidays(year: int) -> holidays.HolidayBase:
    import holidays  # imported when first needed: not at the service's start

    return holidays.country_holidays("FR", years=year)


def is_working_day(day: dt.date) -> bool:
    return day.weekday() < 5 and day not in _holidays(day.year)


def next_working_day(day: dt.date) -> dt.date:
    """``day`` itself if it is a working day, else the next one."""
    while not is_working_day(day):
        day += dt.timedelta(days=1)
    return day


def local_day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(PARIS).date()


def end_of_day(day: dt.date) -> dt.datetime:
    """The last instant of ``day`` in France, as an aware UTC datetime."""
    nxt = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=PARIS)
    return (nxt - dt.timedelta(microseconds=1)).astimezone(dt.UTC)


def due_day(received_at: dt.datetime, months: int = FIRST_PERIOD_MONTHS) -> dt.date:
    """Month arithmetic first, then the working-day rule."""
    return next_working_day(add_months(local_day(received_at), months))


def due_at(received_at: dt.datetime, months: int = FIRST_PERIOD_MONTHS) -> dt.datetime:
    return end_of_day(due_day(received_at, months))


def can_extend(
    received_at: dt.datetime, first_due_at: dt.datetime, extended: bool, now: dt.datetime
) -> str | None:
    """Why an extension is not possible now (a code), or None when it is."""
    if extended:
        return "already_extended"
    if now > first_due_at:
        return "first_period_over"
    return None


def days_left(due: dt.datetime, now: dt.datetime) -> int:
    """Whole days from today to the due day, in France: 0 on the due day, negative after."""
    return (local_day(due) - local_day(now)).days
