"""A mandate's opening hours, after-hours action and on-call rota in plain words, French or
English, as the mandate pages, the console and the command line show them.

Pure module, like ``hours``: no database, no web.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from permanence.mandates.hours import (
    WEEKDAYS,
    AfterHoursAction,
    Hours,
    HoursException,
    Span,
    parse_span,
)

if TYPE_CHECKING:
    from permanence.mandates.mandate import Mandate
    from permanence.mandates.sections import OnCall

_DAY_NAMES = {
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
MONTHS = {  # month names by language (the usage report and the caller's report use them too)
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
    month = MONTHS[lang][day.month - 1]
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
