"""The retention cutoff is exact for calendar periods: due iff anchor + period <= now."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from permanence.mandates.durations import IsoDuration
from permanence.retention.service import cutoff

periods = st.builds(
    IsoDuration,
    years=st.integers(0, 2),
    months=st.integers(0, 13),
    days=st.integers(0, 40),
    hours=st.integers(0, 30),
).filter(lambda d: any((d.years, d.months, d.days, d.hours)))
moments = st.datetimes(
    min_value=dt.datetime(2020, 1, 1),
    max_value=dt.datetime(2030, 12, 31),
    timezones=st.just(dt.UTC),
)


@given(periods, moments, moments)
def test_anchor_is_due_exactly_when_its_period_has_run(
    period: IsoDuration, now: dt.datetime, anchor: dt.datetime
) -> None:
    assert (anchor <= cutoff(period, now)) == (period.add_to(anchor) <= now)


def test_six_months_from_the_end_of_august_runs_to_the_end_of_february() -> None:
    now = dt.datetime(2026, 2, 28, 12, tzinfo=dt.UTC)
    c = cutoff(IsoDuration(months=6), now)
    # 28, 29, 30 and 31 August all end on 28 February: the last of them is the cutoff day.
    assert c.date() == dt.date(2025, 8, 31) and c.hour == 12
    assert cutoff(None, now) == now


every_unit = st.builds(
    IsoDuration,
    years=st.integers(0, 3),
    months=st.integers(0, 25),
    weeks=st.integers(0, 10),
    days=st.integers(0, 70),
    hours=st.integers(0, 50),
    minutes=st.integers(0, 200),
    seconds=st.integers(0, 5000),
).filter(lambda d: any((d.years, d.months, d.weeks, d.days, d.hours, d.minutes, d.seconds)))


@given(every_unit, moments, moments)
def test_every_unit_of_a_period_counts(
    period: IsoDuration, now: dt.datetime, anchor: dt.datetime
) -> None:
    assert (anchor <= cutoff(period, now)) == (period.add_to(anchor) <= now)


NOW = dt.datetime(2026, 3, 31, 12, tzinfo=dt.UTC)
ONE = dt.timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        (IsoDuration(seconds=1), NOW - dt.timedelta(seconds=1)),
        (IsoDuration(days=1), NOW - dt.timedelta(days=1)),
        (IsoDuration(weeks=2), NOW - dt.timedelta(days=14)),
        (IsoDuration(weeks=10), NOW - dt.timedelta(days=70)),
        (IsoDuration(hours=36, minutes=30), NOW - dt.timedelta(hours=36, minutes=30)),
        # Any moment of 28 February plus a month is still in March: the whole day is due.
        (IsoDuration(months=1), dt.datetime(2026, 3, 1, tzinfo=dt.UTC) - ONE),
        (IsoDuration(years=1), dt.datetime(2025, 3, 31, 12, tzinfo=dt.UTC)),
        # Twelve years hold three 29 Februaries (2016, 2020, 2024): 4 383 days.
        (IsoDuration(years=12), dt.datetime(2014, 3, 31, 12, tzinfo=dt.UTC)),
        (IsoDuration(years=40), dt.datetime(1986, 3, 31, 12, tzinfo=dt.UTC)),
        # 30 April 2022 + 3 years 11 months is 30 March 2026: all of that day is due.
        (IsoDuration(years=3, months=11), dt.datetime(2022, 5, 1, tzinfo=dt.UTC) - ONE),
    ],
)
def test_known_cutoffs_to_the_microsecond(period: IsoDuration, expected: dt.datetime) -> None:
    assert cutoff(period, NOW) == expected
    assert period.add_to(expected) <= NOW < period.add_to(expected + ONE)
