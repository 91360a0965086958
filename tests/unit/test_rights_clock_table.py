"""Known values for the Art. 12(3) clock: due dates worked out by hand with a 2027 calendar.

Every expected date below was written by hand (weekday and French public holidays read off a
calendar), not computed with the clock or the ``holidays`` package: this table is the oracle.
2027's French public holidays: Fri 1 Jan, Easter Monday 29 Mar, Sat 1 May, Thu 6 May
(Ascension), Sat 8 May, Whit Monday 17 May, Wed 14 Jul, Sun 15 Aug, Mon 1 Nov, Thu 11 Nov,
Sat 25 Dec; 1 Jan 2028 is a Saturday.
"""

from __future__ import annotations

import datetime as dt

import pytest

from permanence.rights import clock

UTC = dt.UTC
PARIS = clock.PARIS


def paris(y: int, m: int, d: int, h: int = 10, minute: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, minute, tzinfo=PARIS)


# (received, expected first due day, why)
FIRST_PERIOD = [
    (paris(2027, 6, 15), dt.date(2027, 7, 15), "plain: Thursday 15 July"),
    (paris(2027, 3, 15), dt.date(2027, 4, 15), "one month, not 30 days (that is 14 April)"),
    (paris(2027, 5, 12), dt.date(2027, 6, 14), "12 June is a plain Saturday -> Monday 14"),
    (paris(2027, 2, 27), dt.date(2027, 3, 30), "Sat 27 Mar, Sun, Easter Monday 29 -> Tue 30"),
    (paris(2027, 4, 1), dt.date(2027, 5, 3), "Sat 1 May (holiday), Sunday -> Monday 3"),
    (paris(2027, 4, 6), dt.date(2027, 5, 7), "Thu 6 May is Ascension -> Friday 7"),
    (paris(2027, 4, 8), dt.date(2027, 5, 10), "Sat 8 May (holiday), Sunday -> Monday 10"),
    (paris(2027, 4, 17), dt.date(2027, 5, 18), "Mon 17 May is Whit Monday -> Tuesday 18"),
    (paris(2027, 6, 14), dt.date(2027, 7, 15), "Wed 14 July (Fête nationale) -> Thursday 15"),
    (paris(2027, 7, 15), dt.date(2027, 8, 16), "Sun 15 August (Assomption) -> Monday 16"),
    (paris(2027, 10, 1), dt.date(2027, 11, 2), "Mon 1 November (Toussaint) -> Tuesday 2"),
    (paris(2027, 10, 11), dt.date(2027, 11, 12), "Thu 11 November (Armistice) -> Friday 12"),
    (paris(2027, 11, 25), dt.date(2027, 12, 27), "Sat 25 December, Sunday -> Monday 27"),
    (paris(2027, 12, 1), dt.date(2028, 1, 3), "Sat 1 January 2028, Sunday -> Monday 3"),
    (paris(2027, 3, 31), dt.date(2027, 4, 30), "31 March -> 30 April, a Friday"),
    (paris(2027, 5, 31), dt.date(2027, 6, 30), "31 May -> 30 June, a Wednesday"),
    (paris(2027, 3, 29), dt.date(2027, 4, 29), "received on a holiday: the day still counts"),
    # The day of receipt is the day in Paris, whatever the UTC date.
    (
        dt.datetime(2027, 3, 9, 23, 30, tzinfo=UTC),
        dt.date(2027, 4, 12),
        "23:30 UTC on 9 March is 10 March in Paris (CET): Sat 10 April -> Monday 12",
    ),
    (
        dt.datetime(2027, 6, 30, 22, 30, tzinfo=UTC),
        dt.date(2027, 8, 2),
        "22:30 UTC on 30 June is 1 July in Paris (CEST): Sun 1 August -> Monday 2",
    ),
    (
        dt.datetime(2027, 6, 30, 21, 30, tzinfo=UTC),
        dt.date(2027, 7, 30),
        "21:30 UTC on 30 June is still 30 June in Paris: Friday 30 July",
    ),
]

# (received, expected extended due day, why): three months after receipt, same rules.
EXTENDED_PERIOD = [
    (paris(2027, 3, 15), dt.date(2027, 6, 15), "three months (two would be Tue 18 May)"),
    (paris(2027, 2, 27), dt.date(2027, 5, 27), "Thursday 27 May"),
    (paris(2027, 2, 8), dt.date(2027, 5, 10), "Sat 8 May (holiday), Sunday -> Monday 10"),
    (paris(2027, 11, 30), dt.date(2028, 2, 29), "30 Nov -> 29 Feb 2028 (leap year), Tuesday"),
]


@pytest.mark.parametrize(("received", "expected", "why"), FIRST_PERIOD)
def test_first_due_day_matches_the_hand_made_table(
    received: dt.datetime, expected: dt.date, why: str
) -> None:
    assert clock.due_day(received) == expected, why


@pytest.mark.parametrize(("received", "expected", "why"), EXTENDED_PERIOD)
def test_extended_due_day_matches_the_hand_made_table(
    received: dt.datetime, expected: dt.date, why: str
) -> None:
    assert clock.due_day(received, clock.EXTENDED_PERIOD_MONTHS) == expected, why


def test_the_first_period_ends_at_midnight_paris_on_its_due_day() -> None:
    # Due Thursday 15 July 2027; Paris is UTC+2 in summer, so the end is 21:59:59.999999 UTC.
    assert clock.due_at(paris(2027, 6, 15)) == dt.datetime(
        2027, 7, 15, 21, 59, 59, 999999, tzinfo=UTC
    )
    # Due Monday 3 January 2028; Paris is UTC+1 in winter.
    assert clock.due_at(paris(2027, 12, 1)) == dt.datetime(
        2028, 1, 3, 22, 59, 59, 999999, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (dt.date(2027, 6, 11), True),  # Friday
        (dt.date(2027, 6, 12), False),  # Saturday
        (dt.date(2027, 6, 13), False),  # Sunday
        (dt.date(2027, 6, 14), True),  # Monday
        (dt.date(2027, 5, 6), False),  # Ascension (Thursday)
        (dt.date(2027, 5, 17), False),  # Whit Monday
        (dt.date(2027, 5, 18), True),  # Tuesday after Whit Monday
    ],
)
def test_working_days(day: dt.date, working: bool) -> None:
    assert clock.is_working_day(day) is working


def test_days_left_counts_paris_days() -> None:
    due = clock.due_at(paris(2027, 6, 15))  # Thursday 15 July 2027, end of day in Paris
    assert clock.days_left(due, paris(2027, 7, 15, 23, 30)) == 0
    assert clock.days_left(due, paris(2027, 7, 14, 0, 10)) == 1
    assert clock.days_left(due, paris(2027, 7, 16, 0, 10)) == -1


def test_an_extension_may_still_be_decided_at_the_last_instant_of_the_first_period() -> None:
    received = paris(2027, 6, 15)
    first = clock.due_at(received)
    assert clock.can_extend(received, first, False, first) is None
    assert clock.can_extend(received, first, False, first + dt.timedelta(microseconds=1)) == (
        "first_period_over"
    )
    assert clock.can_extend(received, first, True, first) == "already_extended"
