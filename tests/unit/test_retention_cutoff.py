"""The retention cutoff is exact for calendar periods: due iff anchor + period <= now."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from permanence.mandates.schema import IsoDuration
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
