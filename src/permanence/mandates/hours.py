"""Opening hours of a mandate: when the service answers for the client, and what happens
out of hours (docs/mandates.md, docs/telephony.md, ADR 0022).

Pure module, like ``schema`` (which imports these models into ``Mandate``): no database, no
web. Who is on call is read in ``oncall.py``; the schedule in plain words is in
``hours_words.py``. Times are wall-clock times in the schedule's IANA zone, so a range
"08:30-12:00" opens at 08:30 local time on both sides of a daylight-saving change. A range
written with ``+1`` ("22:00-02:00+1") ends the next day; any other range must end after it
starts.

Which ranges apply on a date: a dated exception if one covers it; else nothing on a public
holiday of the declared country when holidays are ``closed``; else the weekday's ranges. A
``+1`` range belongs to the day it starts on: its tail after midnight is open even when the
next day is a holiday.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic
from pydantic import field_validator, model_validator

from permanence.mandates.base import CountryCode, Text, _Model
from permanence.mandates.errors import _reject

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_MINUTES = 24 * 60


# -- time ranges ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    """One opening range in minutes after midnight; ``next_day``: it ends the day after."""

    start: int
    end: int
    next_day: bool = False

    @property
    def end_today(self) -> int:
        """Where the range stops on the day it starts (midnight for a ``+1`` range)."""
        return DAY_MINUTES if self.next_day else self.end

    def covers(self, minute: int) -> bool:
        return self.start <= minute < self.end_today

    def covers_tail(self, minute: int) -> bool:
        """Whether ``minute`` of the next day is in this range's part after midnight."""
        return self.next_day and minute < self.end


def _minutes(text: str, *, end: bool) -> int:
    hh, sep, mm = text.partition(":")
    if not (sep and len(hh) == 2 and len(mm) == 2 and hh.isdigit() and mm.isdigit()):
        raise ValueError
    h, m = int(hh), int(mm)
    if m > 59 or h > 24 or (h == 24 and (m != 0 or not end)):
        raise ValueError
    return h * 60 + m


def parse_span(text: str) -> Span:
    """``"08:30-12:00"``, ``"14:00-24:00"`` or ``"22:00-02:00+1"``; ValueError says why."""
    raw = text.strip()
    next_day = raw.endswith("+1")
    body = raw.removesuffix("+1").strip()
    first, sep, second = body.partition("-")
    try:
        if not sep:
            raise ValueError
        start, end = _minutes(first.strip(), end=False), _minutes(second.strip(), end=True)
    except ValueError:
        raise ValueError(
            f"'{text}' is not a time range like 08:30-12:00 (HH:MM-HH:MM, 00:00 to 24:00)"
        ) from None
    if next_day:
        if end > start or end == DAY_MINUTES:
            raise ValueError(
                f"'{text}' is marked +1 (ends the next day) but is not longer than a day "
                "ending after midnight; drop the +1"
            )
    elif end <= start:
        raise ValueError(
            f"'{text}' ends before it starts; a range past midnight is written "
            f"'{first.strip()}-{second.strip()}+1'"
        )
    return Span(start, end, next_day)


def _day_problems(where: str, ranges: Sequence[str]) -> tuple[list[Span], list[str]]:
    """The spans of one day's list, and its problems (each naming ``where[i]``)."""
    problems: list[str] = []
    spans: list[tuple[int, Span]] = []
    for i, text in enumerate(ranges):
        try:
            spans.append((i, parse_span(text)))
        except ValueError as exc:
            problems.append(f"{where}[{i}]: {exc}")
    ordered = sorted(spans, key=lambda p: p[1].start)
    for (i, a), (j, b) in itertools.pairwise(ordered):
        if b.start < a.end_today:
            problems.append(f"{where}[{j}]: '{ranges[j]}' overlaps '{ranges[i]}' ({where}[{i}])")
    return [s for _, s in ordered], problems


# -- models -----------------------------------------------------------------------------------


class HolidayRule(_Model):
    """The public holidays of a country (``holidays`` package): closed, or open as usual."""

    country: CountryCode
    subdivision: Text | None = None
    closed: bool = True

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        import holidays as holidays_lib  # when a mandate is read: not at the service's start

        supported = holidays_lib.list_supported_countries()
        if self.country not in supported:
            _reject([f"country '{self.country}' has no public holiday calendar"])
        if self.subdivision is not None and self.subdivision not in supported[self.country]:
            known = ", ".join(supported[self.country]) or "none"
            _reject([f"subdivision '{self.subdivision}' is not one of {self.country}'s ({known})"])
        return self

    def name_on(self, day: dt.date) -> str | None:
        """The holiday's French name on ``day``, or None on an ordinary day."""
        return _calendar(self.country, self.subdivision, day.year).get(day)


@functools.lru_cache(maxsize=64)  # pragma: no mutate (a cache: changes no result)
def _calendar(country: str, subdivision: str | None, year: int) -> dict[dt.date, str]:
    import holidays as holidays_lib

    try:
        table = holidays_lib.country_holidays(
            country, subdiv=subdivision, years=year, language="fr"
        )
    except NotImplementedError:  # pragma: no cover - checked by the validator
        return {}
    return dict(table.items())


class HoursException(_Model):
    """A dated exception: one ``date`` or a period ``start``..``end`` (inclusive), either
    ``closed: true`` or opening ``ranges`` that replace the week's for those days."""

    date: dt.date | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    closed: bool = False
    ranges: tuple[Text, ...] = ()
    note: Text | None = None

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        problems: list[str] = []
        if self.date is not None and (self.start is not None or self.end is not None):
            problems.append("write either 'date' or 'start' and 'end', not both")
        elif self.date is None and (self.start is None or self.end is None):
            problems.append("a 'date', or a 'start' and an 'end', is required")
        elif self.start is not None and self.end is not None and self.end < self.start:
            problems.append(f"the period ends ({self.end}) before it starts ({self.start})")
        if self.closed and self.ranges:
            problems.append("'closed: true' and 'ranges' contradict each other; keep one")
        elif not self.closed and not self.ranges:
            problems.append("say 'closed: true' or give the day's opening 'ranges'")
        _spans, day_problems = _day_problems("ranges", self.ranges)
        problems += day_problems
        _reject(problems)
        return self

    @property
    def first(self) -> dt.date:
        return self.date or self.start or dt.date.min

    @property
    def last(self) -> dt.date:
        return self.date or self.end or dt.date.min

    def covers(self, day: dt.date) -> bool:
        return self.first <= day <= self.last

    @property
    def spans(self) -> list[Span]:
        return sorted((parse_span(r) for r in self.ranges), key=lambda s: s.start)


class Hours(_Model):
    """When the service answers for this client."""

    timezone: Text = "Europe/Paris"
    weekly: dict[str, tuple[Text, ...]] = pydantic.Field(default_factory=dict)
    holidays: HolidayRule | None = None
    exceptions: tuple[HoursException, ...] = ()

    # Field validators: each part is checked (and reported) even when another is invalid.
    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            _reject([f"unknown time zone '{value}' (an IANA name, e.g. Europe/Paris)"])
        return value

    @field_validator("weekly")
    @classmethod
    def _week_ranges(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        problems: list[str] = []
        week: dict[str, list[Span]] = {}
        for day, ranges in value.items():
            if day not in WEEKDAYS:
                problems.append(f"'{day}' is not a weekday ({', '.join(WEEKDAYS)})")
                continue
            week[day], day_problems = _day_problems(day, ranges)
            problems += day_problems
        for i, day in enumerate(WEEKDAYS):  # a +1 range must end before the next day opens
            spans, following = week.get(day, []), week.get(WEEKDAYS[(i + 1) % 7], [])
            tail = max((s.end for s in spans if s.next_day), default=0)
            if tail and following and following[0].start < tail:
                problems.append(
                    f"{day}: a range past midnight runs until {_hhmm(tail)} on "
                    f"{WEEKDAYS[(i + 1) % 7]}, which opens at {_hhmm(following[0].start)}"
                )
        _reject(problems)
        return value

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        problems: list[str] = []
        for i, a in enumerate(self.exceptions):
            for j in range(i):
                b = self.exceptions[j]
                if a.first <= b.last and b.first <= a.last:
                    problems.append(
                        f"exceptions[{i}] ({a.first}..{a.last}) overlaps exceptions[{j}] "
                        f"({b.first}..{b.last})"
                    )
        _reject(problems)
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def day(self, day: dt.date) -> tuple[list[Span], str, str | None]:
        """The ranges in force on ``day``, why (``exception``, ``holiday``, ``schedule``) and
        the holiday's name if it is one."""
        for exc in self.exceptions:
            if exc.covers(day):
                return ([] if exc.closed else exc.spans), "exception", None
        holiday = self.holidays.name_on(day) if self.holidays is not None else None
        if holiday is not None and self.holidays is not None and self.holidays.closed:
            return [], "holiday", holiday
        spans = [parse_span(r) for r in self.weekly.get(WEEKDAYS[day.weekday()], ())]
        return sorted(spans, key=lambda s: s.start), "schedule", holiday

    def status(self, now: dt.datetime) -> tuple[bool, str, str | None]:
        """Open at ``now`` (aware)? With the reason and the holiday's name, as ``day``."""
        local = now.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        spans, reason, holiday = self.day(local.date())
        if any(s.covers(minute) for s in spans):
            return True, reason, holiday
        previous, _why, _name = self.day(local.date() - dt.timedelta(days=1))
        if any(s.covers_tail(minute) for s in previous):
            return True, "schedule", holiday
        return False, reason, holiday

    def is_open(self, now: dt.datetime) -> bool:
        return self.status(now)[0]


class AfterHoursAction(StrEnum):
    VOICEMAIL = "voicemail"  # the after-hours greeting, then voicemail
    FORWARD = "forward"  # the on-call contact in force, told by on_call.notice_fr
    ANSWER = "answer"  # answered as in hours (a 24/7 client); counted as after hours


DEFAULT_GREETING = {
    "fr": "Nous sommes actuellement fermés. Laissez votre message après le bip, "
    "nous vous rappellerons dès l'ouverture.",
    "en": "We are closed at the moment. Please leave a message after the tone and we will "
    "call you back when we open.",
}


# Said before forwarding when the mandate's on_call gives no notice of its own.
DEFAULT_FORWARD_NOTICE = {
    "fr": "Nous sommes fermés ; nous vous mettons en relation avec la personne d'astreinte.",
    "en": "We are closed; we are putting you through to the person on call.",
}


class AfterHours(_Model):
    """What happens to a call out of hours. ``after_hours: voicemail`` is short for
    ``{action: voicemail}``."""

    action: AfterHoursAction
    greeting_fr: Text | None = None
    greeting_en: Text | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"action": value} if isinstance(value, str) else value

    def greeting(self, lang: str) -> str | None:
        """What is said first out of hours in ``lang``; voicemail has a default."""
        text = self.greeting_en if lang == "en" else self.greeting_fr
        if text is None and self.action is AfterHoursAction.VOICEMAIL:
            return DEFAULT_GREETING["en" if lang == "en" else "fr"]
        return text


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
