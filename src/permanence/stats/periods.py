"""Statistics periods: whole days in Paris time, both ends included (docs/statistics.md)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from permanence.db import utcnow
from permanence.errors import ValidationFailed
from permanence.render import PARIS

MAX_PERIOD_DAYS = 400
# Statistics exist only between these days: outside them a date is a mistake (and near the
# ends of the calendar, day arithmetic would overflow: a 500 instead of a clear 422).
EARLIEST_DAY, LATEST_DAY = dt.date(2000, 1, 1), dt.date(2999, 12, 31)


def _in_calendar(*days: dt.date | None) -> None:
    for day in days:
        if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY:
            raise ValidationFailed(
                f"dates must be between {EARLIEST_DAY.isoformat()} and {LATEST_DAY.isoformat()}"
            )


@dataclass(frozen=True)
class Period:
    """Whole days in Paris time, both ends included."""

    first: dt.date
    last: dt.date

    @property
    def lower(self) -> dt.datetime:
        return dt.datetime.combine(self.first, dt.time(), PARIS).astimezone(dt.UTC)

    @property
    def upper(self) -> dt.datetime:
        nxt = self.last + dt.timedelta(days=1)
        return dt.datetime.combine(nxt, dt.time(), PARIS).astimezone(dt.UTC)

    @property
    def days(self) -> list[dt.date]:
        n = (self.last - self.first).days + 1
        return [self.first + dt.timedelta(days=i) for i in range(n)]

    @classmethod
    def of(cls, first: dt.date | None, last: dt.date | None, *, default_days: int = 30) -> Period:
        _in_calendar(first, last)
        today = utcnow().astimezone(PARIS).date()
        last = last or (today if first is None else first + dt.timedelta(days=default_days - 1))
        first = first or last - dt.timedelta(days=default_days - 1)
        if last < first:
            raise ValidationFailed("end must not be before start")
        if (last - first).days + 1 > MAX_PERIOD_DAYS:
            raise ValidationFailed(f"a period is at most {MAX_PERIOD_DAYS} days")
        return cls(first, last)

    @classmethod
    def month(cls, month: str) -> Period:
        """``YYYY-MM`` as a period."""
        try:
            first = dt.date.fromisoformat(f"{month}-01")
        except ValueError:
            raise ValidationFailed("month must be written YYYY-MM, e.g. 2026-03") from None
        _in_calendar(first)
        nxt = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        return cls(first, nxt - dt.timedelta(days=1))
