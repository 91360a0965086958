"""Opening hours of a mandate: when the service answers for the client, and what happens
out of hours (docs/mandates.md, docs/telephony.md, ADR 0022).

Pure module, like ``schema`` (which imports these models into ``Mandate``): no database, no
web. Times are wall-clock times in the schedule's IANA zone, so a range "08:30-12:00" opens
at 08:30 local time on both sides of a daylight-saving change. A range written with ``+1``
("22:00-02:00+1") ends the next day; any other range must end after it starts.

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
from typing import TYPE_CHECKING, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib
import pydantic
from pydantic import field_validator, model_validator

from permanence.mandates.base import CountryCode, Text, _Model
from permanence.mandates.errors import _reject

if TYPE_CHECKING:
    from permanence.mandates.mandate import Mandate
    from permanence.mandates.sections import OnCall, OnCallContact

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


@functools.lru_cache(maxsize=64)
def _calendar(country: str, subdivision: str | None, year: int) -> dict[dt.date, str]:
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


def mandate_problems(mandate: Mandate) -> list[str]:
    """The rules between ``hours``, ``after_hours`` and ``on_call`` (each names its place)."""
    problems: list[str] = []
    after = mandate.after_hours
    if after is not None and mandate.hours is None:
        problems.append(
            "after_hours: is set but 'hours' is missing; without opening hours every call is "
            "answered as in hours"
        )
    if after is not None and after.action is AfterHoursAction.FORWARD and mandate.on_call is None:
        problems.append("after_hours: forward needs the 'on_call' list of contacts to forward to")
    if mandate.notice.english_key is not None and after is not None:
        if after.greeting_fr is not None and after.greeting_en is None:
            problems.append("after_hours.greeting_en is missing: notice.english_key offers English")
        oc = mandate.on_call
        forward = after.action is AfterHoursAction.FORWARD
        if forward and oc is not None and oc.notice_fr is not None and oc.notice_en is None:
            problems.append("on_call.notice_en is missing: notice.english_key offers English")
    return problems


# -- on call ----------------------------------------------------------------------------------

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


# -- plain words ------------------------------------------------------------------------------

_DAY_NAMES = {
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS = {
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _time(minutes: int, lang: str) -> str:
    h, m = divmod(minutes, 60)
    return f"{h} h {m:02d}" if lang == "fr" else f"{h:02d}:{m:02d}"


def _span_words(span: Span, lang: str) -> str:
    text = f"{_time(span.start, lang)} – {_time(span.end, lang)}"
    if span.next_day:
        text += " (le lendemain)" if lang == "fr" else " (the next day)"
    return text


def _join(items: Sequence[str], lang: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + (" et " if lang == "fr" else " and ") + items[-1]


def _days_words(first: int, last: int, lang: str) -> str:
    names = _DAY_NAMES[lang]
    if first == last:
        return f"le {names[first]}" if lang == "fr" else names[first]
    if last == first + 1:
        return _join([names[first], names[last]], lang)
    return (
        f"du {names[first]} au {names[last]}"
        if lang == "fr"
        else f"{names[first]} to {names[last]}"
    )


def _date_words(day: dt.date, lang: str) -> str:
    month = _MONTHS[lang][day.month - 1]
    if lang == "fr":
        return f"{'1er' if day.day == 1 else day.day} {month} {day.year}"
    return f"{day.day} {month} {day.year}"


def _period_words(exc: HoursException, lang: str) -> str:
    if exc.first == exc.last:
        return (
            f"le {_date_words(exc.first, lang)}" if lang == "fr" else _date_words(exc.first, lang)
        )
    if lang == "fr":
        return f"du {_date_words(exc.first, lang)} au {_date_words(exc.last, lang)}"
    return f"{_date_words(exc.first, lang)} to {_date_words(exc.last, lang)}"


def _country(code: str, lang: str) -> str:
    from babel import Locale

    return str(Locale(lang).territories.get(code, code))


def describe(hours: Hours, lang: str = "fr") -> list[str]:
    """The schedule in plain words, one line for the week and one per exception.

    >>> describe(Hours(weekly={"mon": ("08:30-12:00",), "tue": ("08:30-12:00",)}))[0]
    'lundi et mardi, 8 h 30 – 12 h 00'
    """
    lang = "en" if lang == "en" else "fr"
    groups: list[tuple[int, int, str]] = []
    for i, day in enumerate(WEEKDAYS):
        spans = sorted((parse_span(r) for r in hours.weekly.get(day, ())), key=lambda s: s.start)
        if not spans:
            continue
        words = _join([_span_words(s, lang) for s in spans], lang)
        if groups and groups[-1][1] == i - 1 and groups[-1][2] == words:
            groups[-1] = (groups[-1][0], i, words)
        else:
            groups.append((i, i, words))
    parts = [f"{_days_words(a, b, lang)}, {words}" for a, b, words in groups]
    if not parts:
        parts.append("fermé toute la semaine" if lang == "fr" else "closed all week")
    rule = hours.holidays
    if rule is not None:
        where = _country(rule.country, lang) + (f", {rule.subdivision}" if rule.subdivision else "")
        if lang == "fr":
            state = "fermé" if rule.closed else "ouvert"
            parts.append(f"{state} les jours fériés ({where})")
        else:
            state = "closed" if rule.closed else "open"
            parts.append(f"{state} on public holidays ({where})")
    week = "; ".join(parts)
    if hours.timezone != "Europe/Paris":
        week += f" ({'heure de' if lang == 'fr' else 'time in'} {hours.timezone})"
    lines = [week[0].upper() + week[1:] if lang == "en" else week]
    for exc in hours.exceptions:
        if exc.closed:
            what = "fermé" if lang == "fr" else "closed"
        else:
            what = _join([_span_words(s, lang) for s in exc.spans], lang)
        note = f" ({exc.note})" if exc.note else ""
        sep = " : " if lang == "fr" else ": "
        lines.append(f"{_period_words(exc, lang)}{sep}{what}{note}")
    return lines


def describe_after_hours(mandate: Mandate, lang: str = "fr") -> str | None:
    """What happens out of hours, in one sentence (None when the mandate declares no hours)."""
    if mandate.hours is None:
        return None
    action = mandate.after_hours.action if mandate.after_hours else AfterHoursAction.VOICEMAIL
    fr = {
        AfterHoursAction.VOICEMAIL: "En dehors de ces horaires : message d'accueil puis "
        "messagerie vocale.",
        AfterHoursAction.FORWARD: "En dehors de ces horaires : renvoi vers la personne "
        "d'astreinte (messagerie vocale si personne n'est d'astreinte ou ne répond).",
        AfterHoursAction.ANSWER: "En dehors de ces horaires : les appels sont pris comme "
        "d'habitude (service 24 h/24).",
    }
    en = {
        AfterHoursAction.VOICEMAIL: "Out of hours: a greeting, then voicemail.",
        AfterHoursAction.FORWARD: "Out of hours: forwarded to the on-call contact (voicemail "
        "when nobody is on call or answers).",
        AfterHoursAction.ANSWER: "Out of hours: calls are answered as usual (24/7 service).",
    }
    return (en if lang == "en" else fr)[action]


def on_call_lines(on_call: OnCall, lang: str = "fr") -> list[str]:
    """Each on-call contact's rota in plain words (names, never numbers)."""
    lang = "en" if lang == "en" else "fr"
    lines = []
    for contact in on_call.contacts:
        hours = f"{_time(contact.starts.hour * 60 + contact.starts.minute, lang)} – " + _time(
            contact.ends.hour * 60 + contact.ends.minute, lang
        )
        if contact.days:
            idx = sorted(WEEKDAYS.index(d) for d in contact.days)
            if len(idx) >= 3 and idx == list(range(idx[0], idx[-1] + 1)):
                days = _days_words(idx[0], idx[-1], lang)
            else:
                days = _join([_DAY_NAMES[lang][i] for i in idx], lang)
        else:
            days = "tous les jours" if lang == "fr" else "every day"
        line = (
            f"{contact.name} : {days}, {hours}"
            if lang == "fr"
            else f"{contact.name}: {days}, {hours}"
        )
        if contact.valid_from or contact.valid_until:
            a = _date_words(contact.valid_from, lang) if contact.valid_from else "…"
            b = _date_words(contact.valid_until, lang) if contact.valid_until else "…"
            line += f" (du {a} au {b})" if lang == "fr" else f" ({a} to {b})"
        lines.append(line)
    return lines


def opening_hours_view(mandate: Mandate, lang: str = "fr") -> dict[str, Any] | None:
    """What the mandate pages show of the hours (None when the mandate declares none)."""
    if mandate.hours is None:
        return None
    forward = mandate.after_hours is not None and (
        mandate.after_hours.action is AfterHoursAction.FORWARD
    )
    return {
        "week": describe(mandate.hours, lang),
        "after": describe_after_hours(mandate, lang),
        "on_call": on_call_lines(mandate.on_call, lang) if forward and mandate.on_call else [],
    }
