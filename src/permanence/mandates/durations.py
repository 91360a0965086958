"""ISO-8601 durations as written in a mandate (`P6M`, `PT30M`): retention periods, escalation
delays. Calendar durations are compared over every start date of a four-year cycle.
"""

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, overload

from pydantic import (
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

_DURATION = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?"
)

# Start dates used to compare calendar durations: every first and last day of each month over a
# four-year cycle (one leap year), so "never longer than" holds whatever the start date.
_REFERENCE_STARTS: tuple[datetime, ...] = tuple(
    datetime(year, month, day)
    for year in range(2024, 2028)
    for month in range(1, 13)
    for day in (1, calendar.monthrange(year, month)[1])
)


@dataclass(frozen=True, slots=True)
class IsoDuration:
    """An ISO-8601 duration (PnYnMnWnDTnHnMnS, integer components, longer than zero).

    Years and months are calendar units: adding P1M to 31 January gives the last day of
    February. Days are calendar days (wall-clock time is kept across a DST change).
    """

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    @classmethod
    def parse(cls, text: str) -> "IsoDuration":
        match = _DURATION.fullmatch(text.strip().upper())
        if match is None or not any(match.groupdict().values()) or text.strip().endswith("T"):
            raise ValueError(
                "must be an ISO-8601 duration such as P6M, P1Y, P30D or PT30M "
                "(integer components only)"
            )
        parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
        duration = cls(**parts)
        if not any(parts.values()):
            raise ValueError("duration must be longer than zero")
        return duration

    @overload
    def add_to(self, when: datetime) -> datetime: ...
    @overload
    def add_to(self, when: date) -> date: ...
    def add_to(self, when: date) -> date:
        """`when` plus this duration; a `date` only accepts durations without a time part."""
        total_months = self.years * 12 + self.months
        month_index = when.month - 1 + total_months
        year, month = when.year + month_index // 12, month_index % 12 + 1
        day = min(when.day, calendar.monthrange(year, month)[1])
        shifted = when.replace(year=year, month=month, day=day)
        shifted = shifted + timedelta(days=self.weeks * 7 + self.days)
        clock = timedelta(hours=self.hours, minutes=self.minutes, seconds=self.seconds)
        if not clock:
            return shifted
        if not isinstance(shifted, datetime):
            raise TypeError(f"cannot add {self} (it has a time part) to a date")
        return shifted + clock

    def __radd__(self, other: datetime) -> datetime:
        return self.add_to(other)

    def exceeds(self, limit: "IsoDuration") -> bool:
        """True if, from some start date, this duration ends later than `limit` does."""
        return any(self.add_to(s) > limit.add_to(s) for s in _REFERENCE_STARTS)

    def approximate(self) -> timedelta:
        """A representative length (from 1 January 2025), for sorting and display only."""
        start = datetime(2025, 1, 1)
        return self.add_to(start) - start

    def __str__(self) -> str:
        units = [(self.years, "Y"), (self.months, "M"), (self.weeks, "W"), (self.days, "D")]
        clock = [(self.hours, "H"), (self.minutes, "M"), (self.seconds, "S")]
        text = "P" + "".join(f"{n}{u}" for n, u in units if n)
        if any(n for n, _ in clock):
            text += "T" + "".join(f"{n}{u}" for n, u in clock if n)
        return text

    @classmethod
    def _coerce(cls, value: object) -> "IsoDuration":
        if isinstance(value, IsoDuration):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        raise ValueError("must be an ISO-8601 duration string such as P6M or PT30M")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._coerce, serialization=core_schema.to_string_ser_schema()
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "duration", "examples": ["P6M", "PT30M"]}


def parse_duration(text: str) -> IsoDuration:
    """Parse an ISO-8601 duration; raises ValueError with a readable message."""
    return IsoDuration.parse(text)
