"""The Art. 12(3) clock: one calendar month, last day of a shorter month, next working day."""

from __future__ import annotations

import datetime as dt

import pytest

from permanence.rights import clock

PARIS = clock.PARIS


def at(y: int, m: int, d: int, h: int = 10) -> dt.datetime:
    return dt.datetime(y, m, d, h, tzinfo=PARIS).astimezone(dt.UTC)


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (dt.date(2028, 1, 31), 1, dt.date(2028, 2, 29)),  # leap year
        (dt.date(2027, 1, 31), 1, dt.date(2027, 2, 28)),
        (dt.date(2027, 3, 31), 1, dt.date(2027, 4, 30)),
        (dt.date(2027, 1, 15), 1, dt.date(2027, 2, 15)),
        (dt.date(2027, 12, 31), 2, dt.date(2028, 2, 29)),
        (dt.date(2027, 11, 30), 3, dt.date(2028, 2, 29)),
    ],
)
def test_month_arithmetic_keeps_the_day_or_takes_the_last_of_a_shorter_month(
    day: dt.date, months: int, expected: dt.date
) -> None:
    assert clock.add_months(day, months) == expected


def test_received_31_january_2028_is_due_tuesday_29_february() -> None:
    assert clock.due_day(at(2028, 1, 31)) == dt.date(2028, 2, 29)


def test_received_31_january_2027_falls_on_sunday_28_february_so_is_due_monday() -> None:
    assert dt.date(2027, 2, 28).weekday() == 6
    assert clock.due_day(at(2027, 1, 31)) == dt.date(2027, 3, 1)


def test_due_date_on_a_public_holiday_moves_to_the_next_working_day() -> None:
    # 1 May 2028 is a Monday and Fête du Travail; 8 May 2028 (Monday) is Victoire 1945.
    assert clock.due_day(at(2028, 4, 1)) == dt.date(2028, 5, 2)
    assert clock.due_day(at(2028, 4, 8)) == dt.date(2028, 5, 9)


def test_due_date_after_saturday_and_holiday_skips_both() -> None:
    # 14 July 2029 is a Saturday (Fête nationale); next working day is Monday 16.
    assert clock.due_day(at(2029, 6, 14)) == dt.date(2029, 7, 16)


def test_the_day_of_receipt_is_taken_in_france() -> None:
    # 23:30 UTC on 31 January is already 1 February in Paris.
    late = dt.datetime(2028, 1, 31, 23, 30, tzinfo=dt.UTC)
    assert clock.due_day(late) == dt.date(2028, 3, 1)


def test_the_period_ends_at_the_end_of_its_last_day_in_paris() -> None:
    due = clock.due_at(at(2028, 1, 31))
    assert due.astimezone(PARIS).date() == dt.date(2028, 2, 29)
    assert due.astimezone(PARIS).time() >= dt.time(23, 59, 59)


def test_extension_is_three_months_after_receipt_by_the_same_rules() -> None:
    # 30 Nov 2027 + 3 months = 29 Feb 2028 (leap year), a Tuesday.
    assert clock.due_day(at(2027, 11, 30), clock.EXTENDED_PERIOD_MONTHS) == dt.date(2028, 2, 29)
    # 31 Oct 2027 + 3 months = 31 Jan 2028, a Monday.
    assert clock.due_day(at(2027, 10, 31), clock.EXTENDED_PERIOD_MONTHS) == dt.date(2028, 1, 31)


def test_extension_only_once_and_only_before_the_first_due_date() -> None:
    received = at(2028, 1, 10)
    first = clock.due_at(received)
    assert clock.can_extend(received, first, False, first - dt.timedelta(hours=1)) is None
    assert clock.can_extend(received, first, False, first + dt.timedelta(seconds=1)) == (
        "first_period_over"
    )
    assert clock.can_extend(received, first, True, received) == "already_extended"


def test_days_left_counts_french_days() -> None:
    due = clock.due_at(at(2028, 1, 31))
    assert clock.days_left(due, at(2028, 2, 28)) == 1
    assert clock.days_left(due, at(2028, 2, 29, 23)) == 0
    assert clock.days_left(due, at(2028, 3, 2)) == -2
