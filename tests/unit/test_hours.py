"""Opening hours and the arrival decision, against hand-written expectations.

Every expected value below was worked out by hand from the calendar (Paris changes to summer
time on the last Sunday of March at 02:00 CET and back on the last Sunday of October at
03:00 CEST), not computed by the code under test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
import yaml

from permanence.calls.hours import (
    AFTER_HOURS_ANSWER,
    AFTER_HOURS_FORWARD,
    AFTER_HOURS_VOICEMAIL,
    IN_HOURS,
    Decision,
    decide,
)
from permanence.mandates import MandateInvalid, parse_mandate
from permanence.mandates.hours import Hours, Span, parse_span
from permanence.mandates.hours_words import describe, describe_after_hours, on_call_lines
from permanence.mandates.mandate import Mandate
from tests.factories import demo_mandate_text

UTC = dt.UTC
WEEKDAYS = {d: ("08:30-12:00", "14:00-18:00") for d in ("mon", "tue", "wed", "thu", "fri")}


def at(text: str) -> dt.datetime:
    """A UTC moment, written as ``YYYY-MM-DD HH:MM``."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def hours(**kw: Any) -> Hours:
    return Hours.model_validate({"weekly": WEEKDAYS, **kw})


def demo(slug: str, **changes: Any) -> Mandate:
    doc = yaml.safe_load(demo_mandate_text(slug))
    doc.update(changes)
    return parse_mandate(doc)


def problems(slug: str, **changes: Any) -> list[str]:
    with pytest.raises(MandateInvalid) as info:
        demo(slug, **changes)
    return info.value.problems


# -- the weekly schedule and daylight saving -------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-12-08 07:29", False),  # Tuesday 08:29 CET: not yet
        ("2026-12-08 07:30", True),  # 08:30 CET: opens
        ("2026-12-08 10:59", True),  # 11:59
        ("2026-12-08 11:00", False),  # 12:00: lunch
        ("2026-12-08 13:00", True),  # 14:00
        ("2026-12-08 16:59", True),  # 17:59
        ("2026-12-08 17:00", False),  # 18:00: closed
        ("2026-12-12 10:00", False),  # Saturday
        # Summer time starts on Sunday 29 March 2026: 08:30 CEST is 06:30 UTC.
        ("2026-03-27 06:45", False),  # Friday 07:45 CET: closed
        ("2026-03-30 06:45", True),  # Monday 08:45 CEST: open
        ("2026-03-30 16:15", False),  # 18:15 CEST
        ("2026-03-30 15:45", True),  # 17:45 CEST
        # Winter time comes back on Sunday 25 October 2026: 08:30 CET is 07:30 UTC.
        ("2026-10-23 06:45", True),  # Friday 08:45 CEST
        ("2026-10-26 06:45", False),  # Monday 07:45 CET
        ("2026-10-26 07:45", True),  # Monday 08:45 CET
        ("2026-10-26 16:45", True),  # 17:45 CET
    ],
)
def test_weekly_schedule_in_paris_wall_clock_time(moment: str, expected: bool) -> None:
    assert hours().is_open(at(moment)) is expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # Saturday 28 March 2026, 22:00-06:00+1; the clocks jump from 02:00 to 03:00.
        ("2026-03-28 20:59", False),  # 21:59 CET
        ("2026-03-28 21:00", True),  # 22:00 CET
        ("2026-03-28 23:30", True),  # 00:30 CET on Sunday
        ("2026-03-29 01:30", True),  # 03:30 CEST
        ("2026-03-29 03:59", True),  # 05:59 CEST
        ("2026-03-29 04:00", False),  # 06:00 CEST: only 7 hours of opening that night
        # Saturday 24 October 2026: 02:00-03:00 happens twice, both times open.
        ("2026-10-25 00:30", True),  # 02:30 CEST
        ("2026-10-25 01:30", True),  # 02:30 CET
        ("2026-10-25 04:59", True),  # 05:59 CET
        ("2026-10-25 05:00", False),  # 06:00 CET: 9 hours that night
    ],
)
def test_a_night_range_across_a_clock_change(moment: str, expected: bool) -> None:
    night = Hours.model_validate({"weekly": {"sat": ["22:00-06:00+1"]}})
    assert night.is_open(at(moment)) is expected


def test_a_range_past_midnight_belongs_to_the_day_it_starts() -> None:
    h = Hours.model_validate(
        {
            "weekly": {"fri": ["20:00-02:00+1"]},
            "exceptions": [{"date": "2026-12-12", "closed": True}],  # the Saturday
        }
    )
    assert h.is_open(at("2026-12-11 18:59")) is False  # Friday 19:59
    assert h.is_open(at("2026-12-11 19:00")) is True  # 20:00
    assert h.is_open(at("2026-12-12 00:59")) is True  # Saturday 01:59, closed day or not
    assert h.is_open(at("2026-12-12 01:00")) is False  # 02:00
    assert h.is_open(at("2026-12-12 19:30")) is False  # Saturday evening: no range
    assert h.is_open(at("2026-12-05 00:30")) is True  # the Saturday before, 01:30


def test_until_midnight_is_written_24_00() -> None:
    h = Hours.model_validate({"weekly": {"mon": ["18:00-24:00"]}})
    assert h.is_open(at("2026-12-07 22:59")) is True  # Monday 23:59
    assert h.is_open(at("2026-12-07 23:00")) is False  # Tuesday 00:00


def test_the_edges_of_a_time_range() -> None:
    """What a range accepts and refuses at the limits of HH:MM-HH:MM (00:00 to 24:00)."""
    assert parse_span("00:00-24:00") == Span(0, 1440)
    assert parse_span(" 08:30 - 12:00 ") == Span(510, 720)
    assert parse_span("23:59-00:00+1") == Span(1439, 0, next_day=True)
    assert parse_span("22:00-22:00+1") == Span(1320, 1320, next_day=True)  # a whole day
    # A parsed range is a value: it cannot be changed, and can be a key.
    span = parse_span("08:30-12:00")
    with pytest.raises(dataclasses.FrozenInstanceError):
        span.start = 0  # type: ignore[misc]
    assert {span: "morning"}[Span(510, 720)] == "morning"
    for text, why in [
        ("08:00-25:00", "is not a time range"),  # no hour 25, at the end either
        ("08:00-24:01", "is not a time range"),
        ("24:00-24:00", "is not a time range"),  # 24:00 only ends a range
        ("8:00-12:00", "is not a time range"),  # two digits for the hour
        ("08:00-12:0", "is not a time range"),  # and for the minutes
        ("008:00-12:00", "is not a time range"),
        ("08:00-12:000", "is not a time range"),
        ("+8:00-12:00", "is not a time range"),  # digits only (int() would take these)
        ("08:+5-12:00", "is not a time range"),
        ("10:00-10:00", "ends before it starts"),  # an empty range
        ("08:00-10:00+1", "is marked \\+1"),  # longer than a day
        ("22:00-24:00+1", "is marked \\+1"),  # ends at midnight: no +1
    ]:
        with pytest.raises(ValueError, match=why):
            parse_span(text)


# -- public holidays and dated exceptions ----------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "closed_on_holidays", "expected", "reason"),
    [
        ("2026-05-01 08:00", True, False, "holiday"),  # Friday 1 May, fête du Travail
        ("2026-05-01 08:00", False, True, "schedule"),  # holidays open: an ordinary Friday
        ("2026-05-14 08:00", True, False, "holiday"),  # Thursday 14 May 2026, Ascension
        ("2026-05-21 08:00", True, True, "schedule"),  # the Thursday after: open
        ("2026-05-25 08:00", True, False, "holiday"),  # Whit Monday 2026
        ("2027-05-06 08:00", True, False, "holiday"),  # Ascension 2027
        ("2027-05-17 08:00", True, False, "holiday"),  # Whit Monday 2027
        ("2026-11-11 09:00", True, False, "holiday"),  # Wednesday, Armistice
        ("2026-04-03 08:00", True, True, "schedule"),  # Good Friday: not in France at large
    ],
)
def test_french_public_holidays(
    moment: str, closed_on_holidays: bool, expected: bool, reason: str
) -> None:
    h = hours(holidays={"country": "FR", "closed": closed_on_holidays})
    is_open, why, _name = h.status(at(moment))
    assert (is_open, why) == (expected, reason)


def test_a_subdivision_has_its_own_holidays() -> None:
    # Good Friday (3 April 2026) is a holiday in Moselle (57), not in the rest of France.
    moselle = hours(holidays={"country": "FR", "subdivision": "57"})
    assert moselle.status(at("2026-04-03 08:00"))[:2] == (False, "holiday")
    assert hours(holidays={"country": "FR"}).is_open(at("2026-04-03 08:00")) is True


def test_dated_exceptions_close_early_close_a_week_and_open_exceptionally() -> None:
    h = hours(
        holidays={"country": "FR"},
        exceptions=[
            {"date": "2026-12-24", "ranges": ["08:30-12:00"], "note": "veille de Noël"},
            {"start": "2026-08-10", "end": "2026-08-16", "closed": True},
            {"date": "2026-12-19", "ranges": ["09:00-12:00"]},  # a Saturday
            {"date": "2026-12-25", "ranges": ["10:00-11:00"]},  # open on Christmas Day
        ],
    )
    assert h.status(at("2026-12-24 10:59"))[:2] == (True, "exception")  # 11:59 CET
    assert h.status(at("2026-12-24 11:00"))[:2] == (False, "exception")  # 12:00
    assert h.status(at("2026-12-24 13:30"))[:2] == (False, "exception")  # 14:30
    assert h.status(at("2026-08-10 06:30"))[:2] == (False, "exception")  # Mon 08:30 CEST
    assert h.status(at("2026-08-14 12:30"))[:2] == (False, "exception")  # Fri 14:30 CEST
    assert h.status(at("2026-08-17 06:30"))[:2] == (True, "schedule")  # the Monday after
    assert h.status(at("2026-12-19 09:30"))[:2] == (True, "exception")  # Sat 10:30 CET
    assert h.status(at("2026-12-12 09:30"))[:2] == (False, "schedule")  # the Saturday before
    assert h.status(at("2026-12-25 09:30"))[:2] == (True, "exception")  # beats the holiday


# -- the decision ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-12-08 09:00", Decision(IN_HOURS, "schedule")),  # Tuesday 10:00
        ("2026-12-08 19:00", Decision(AFTER_HOURS_FORWARD, "schedule", 0)),  # Tue 20:00: Marc
        ("2026-12-09 01:00", Decision(AFTER_HOURS_FORWARD, "schedule", 1)),  # Wed 02:00: Julien
        ("2026-12-14 06:30", Decision(AFTER_HOURS_FORWARD, "schedule", 1)),  # Mon 07:30: Julien
        ("2026-12-12 09:00", Decision(AFTER_HOURS_FORWARD, "schedule", 2)),  # Sat 10:00: Sophie
        ("2026-12-12 21:30", Decision(AFTER_HOURS_FORWARD, "schedule", 1)),  # Sat 22:30: Julien
        # Christmas Day (Friday): the holiday rota, valid 24 Dec - 1 Jan, takes it.
        ("2026-12-25 09:00", Decision(AFTER_HOURS_FORWARD, "holiday", 3)),
        ("2027-01-01 16:59", Decision(AFTER_HOURS_FORWARD, "holiday", 3)),  # 17:59
        # 14 July 2027 (Wednesday): nobody is on call in the day, so voicemail.
        ("2027-07-14 08:00", Decision(AFTER_HOURS_VOICEMAIL, "no_on_call")),
        # Summer time: Tuesday 22 June 2027 18:30 CEST (16:30 UTC) is Marc's.
        ("2027-06-22 16:30", Decision(AFTER_HOURS_FORWARD, "schedule", 0)),
        ("2027-06-22 15:30", Decision(IN_HOURS, "schedule")),  # 17:30 CEST
    ],
)
def test_the_plumbers_calls_go_to_the_office_or_the_on_call_rota(
    moment: str, expected: Decision
) -> None:
    assert decide(demo("plomberie-durand"), at(moment)) == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-12-08 09:00", Decision(IN_HOURS, "schedule")),
        ("2026-12-09 13:30", Decision(AFTER_HOURS_VOICEMAIL, "schedule")),  # Wed 14:30
        ("2026-12-25 09:00", Decision(AFTER_HOURS_VOICEMAIL, "holiday")),
        ("2026-12-24 13:30", Decision(AFTER_HOURS_VOICEMAIL, "exception")),
        ("2026-12-24 10:30", Decision(IN_HOURS, "exception")),
    ],
)
def test_the_practice_goes_to_voicemail_out_of_hours(moment: str, expected: Decision) -> None:
    assert decide(demo("cabinet-lefevre"), at(moment)) == expected


def test_without_hours_every_call_is_in_hours_and_answer_is_counted_as_after_hours() -> None:
    doc = yaml.safe_load(demo_mandate_text("cabinet-lefevre"))
    doc.pop("hours"), doc.pop("after_hours")
    assert decide(parse_mandate(doc), at("2026-12-25 03:00")) == Decision(IN_HOURS, "always")
    always = demo("cabinet-lefevre", after_hours="answer")
    assert decide(always, at("2026-12-25 03:00")) == Decision(AFTER_HOURS_ANSWER, "holiday")
    assert decide(always, at("2026-12-25 03:00")).in_hours_leg


# -- the validator ---------------------------------------------------------------------------


def test_overlapping_inverted_and_impossible_ranges_are_rejected_by_place() -> None:
    bad = {
        "weekly": {
            "mon": ["08:30-12:00", "11:00-13:00"],
            "tue": ["18:00-08:30"],
            "wed": ["25:00-26:00", "08:60-09:00", "9h-12h"],
            "thu": ["22:00-06:00+1"],
            "fri": ["05:00-12:00"],
            "sam": ["09:00-12:00"],
        },
        "exceptions": [
            {"start": "2026-08-16", "end": "2026-08-10", "closed": True},
            {"date": "2026-12-24"},
        ],
    }
    found = problems("cabinet-lefevre", hours=bad)
    assert "hours.weekly: mon[1]: '11:00-13:00' overlaps '08:30-12:00' (mon[0])" in found
    assert (
        "hours.weekly: tue[0]: '18:00-08:30' ends before it starts; a range past midnight "
        "is written '18:00-08:30+1'"
    ) in found
    for i, text in enumerate(["25:00-26:00", "08:60-09:00", "9h-12h"]):
        assert (
            f"hours.weekly: wed[{i}]: '{text}' is not a time range like 08:30-12:00 "
            "(HH:MM-HH:MM, 00:00 to 24:00)"
        ) in found
    assert (
        "hours.weekly: thu: a range past midnight runs until 06:00 on fri, which opens at 05:00"
    ) in found
    assert "hours.weekly: 'sam' is not a weekday (mon, tue, wed, thu, fri, sat, sun)" in found
    assert "hours.exceptions[0]: the period ends (2026-08-10) before it starts (2026-08-16)" in (
        found
    )
    assert "hours.exceptions[1]: say 'closed: true' or give the day's opening 'ranges'" in found


def test_unknown_zone_country_subdivision_and_overlapping_exceptions_are_named() -> None:
    found = problems(
        "cabinet-lefevre",
        hours={
            "timezone": "Europe/Lyon",
            "weekly": WEEKDAYS,
            "holidays": {"country": "XX"},
        },
    )
    assert (
        "hours.timezone: unknown time zone 'Europe/Lyon' (an IANA name, e.g. Europe/Paris)" in found
    )
    assert "hours.holidays: country 'XX' has no public holiday calendar" in found
    overlapping = [
        {"start": "2026-08-10", "end": "2026-08-16", "closed": True},
        {"date": "2026-08-14", "ranges": ["09:00-12:00"]},
    ]
    assert problems("cabinet-lefevre", hours={"exceptions": overlapping}) == [
        "hours: exceptions[1] (2026-08-14..2026-08-14) overlaps exceptions[0] "
        "(2026-08-10..2026-08-16)"
    ]
    sub = problems("cabinet-lefevre", hours={"holidays": {"country": "FR", "subdivision": "99"}})
    assert sub[0].startswith("hours.holidays: subdivision '99' is not one of FR's (57, ")


def test_after_hours_needs_hours_and_forwarding_needs_an_on_call_list() -> None:
    doc = yaml.safe_load(demo_mandate_text("plomberie-durand"))
    doc.pop("on_call")
    with pytest.raises(MandateInvalid) as info:
        parse_mandate(doc)
    assert info.value.problems == [
        "after_hours: forward needs the 'on_call' list of contacts to forward to"
    ]
    doc = yaml.safe_load(demo_mandate_text("cabinet-lefevre"))
    doc.pop("hours")
    with pytest.raises(MandateInvalid) as info:
        parse_mandate(doc)
    assert info.value.problems == [
        "after_hours: is set but 'hours' is missing; without opening hours every call is "
        "answered as in hours"
    ]
    found = problems("cabinet-lefevre", after_hours="later")
    assert found[0].startswith("after_hours.action: 'later' is not allowed")


def test_an_on_call_rota_is_checked() -> None:
    doc = yaml.safe_load(demo_mandate_text("plomberie-durand"))
    doc["on_call"]["contacts"][0]["days"] = ["mon", "mon"]
    doc["on_call"]["contacts"][3]["valid_until"] = "2026-12-01"
    with pytest.raises(MandateInvalid) as info:
        parse_mandate(doc)
    assert info.value.problems == [
        "on_call.contacts[0]: days: a day is listed twice",
        "on_call.contacts[3]: valid_until (2026-12-01) is before valid_from (2026-12-24)",
    ]


# -- plain words -----------------------------------------------------------------------------


def test_the_schedule_in_plain_french_and_english() -> None:
    h = hours(holidays={"country": "FR"})
    assert describe(h, "fr") == [
        "du lundi au vendredi, 8 h 30 – 12 h 00 et 14 h 00 – 18 h 00; "
        "fermé les jours fériés (France)"
    ]
    assert describe(h, "en") == [
        "Monday to Friday, 08:30 – 12:00 and 14:00 – 18:00; closed on public holidays (France)"
    ]
    lefevre = demo("cabinet-lefevre")
    assert lefevre.hours is not None
    assert describe(lefevre.hours, "fr") == [
        "lundi et mardi, 8 h 30 – 12 h 00 et 14 h 00 – 18 h 00; le mercredi, 8 h 30 – 12 h 00; "
        "jeudi et vendredi, 8 h 30 – 12 h 00 et 14 h 00 – 18 h 00; "
        "fermé les jours fériés (France)",
        "le 24 décembre 2026 : 8 h 30 – 12 h 00 (veille de Noël)",
        "le 31 décembre 2026 : 8 h 30 – 12 h 00 (veille du jour de l'an)",
    ]
    moreau = demo("cabinet-moreau-avocats")
    assert moreau.hours is not None
    assert describe(moreau.hours, "fr")[-1] == (
        "du 9 août 2027 au 15 août 2027 : fermé (fermeture estivale)"
    )
    night = Hours.model_validate(
        {"weekly": {"sat": ["22:00-06:00+1"]}, "holidays": {"country": "FR", "closed": False}}
    )
    assert describe(night, "fr") == [
        "le samedi, 22 h 00 – 6 h 00 (le lendemain); ouvert les jours fériés (France)"
    ]
    assert describe_after_hours(lefevre, "fr") == (
        "En dehors de ces horaires : message d'accueil puis messagerie vocale."
    )
    plumber = demo("plomberie-durand")
    assert plumber.on_call is not None
    assert on_call_lines(plumber.on_call, "fr") == [
        "Marc Durand : du lundi au vendredi, 18 h 00 – 22 h 00",
        "Julien Durand : tous les jours, 22 h 00 – 8 h 00",
        "Sophie Durand : samedi et dimanche, 8 h 00 – 22 h 00",
        "Marc Durand : tous les jours, 8 h 00 – 18 h 00 (du 24 décembre 2026 au 1er janvier 2027)",
    ]
