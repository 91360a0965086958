"""Numbers as the reader writes them (issue 17): rates in French format on French pages, and
the charts' count axes in whole numbers, their words in the page's language."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest

from permanence.render import percent
from permanence.stats.service import ABANDON_EDGES, ANSWER_EDGES, AccountStats, Counts, Period
from permanence.web.pages.render import environment


def test_rates_and_counts_in_the_language_of_the_page() -> None:
    assert percent(0.125, "fr") == "12,5\u00a0%"
    assert percent(0.125, "en") == "12.5%"
    assert percent(1, "fr") == "100,0\u00a0%"
    assert percent(None, "fr") == "–"
    fr = environment("fr").from_string("{{ 1234|number }} · {{ 0.5|percent }}").render()
    en = environment("en").from_string("{{ 1234|number }} · {{ 0.5|percent }}").render()
    assert fr == "1\u202f234 · 50,0\u00a0%"
    assert en == "1,234 · 50.0%"


def _stats(per_day: list[int]) -> AccountStats:
    first = dt.date(2026, 3, 2)
    days = [
        (first + dt.timedelta(days=i), Counts(received=n, answered=n))
        for i, n in enumerate(per_day)
    ]
    hours = [Counts() for _ in range(24)]
    hours[9] = Counts(received=sum(per_day), answered=sum(per_day) - 1, abandoned=1)
    return AccountStats(
        account_id=uuid.uuid4(),
        period=Period(first, first + dt.timedelta(days=len(per_day) - 1)),
        calls=Counts(received=sum(per_day), answered=sum(per_day) - 1, abandoned=1),
        answer_s_avg=12.4,
        answer_s_p90=30.0,
        answer_hist=[1, 2, 0] + [0] * len(ANSWER_EDGES),
        talk_s_total=600,
        talk_s_avg=120.0,
        abandon_after_s_avg=20.0,
        abandon_hist=[1] + [0] * len(ABANDON_EDGES),
        messages_taken=1,
        messages_unacknowledged=0,
        appointments_booked=0,
        appointments_cancelled=0,
        recordings=0,
        recording_s=0,
        by_hour=hours,
        by_day=days,
        by_month=[("2026-03", Counts(received=sum(per_day), answered=sum(per_day) - 1))],
    )


def _y_labels(svg: str) -> list[str]:
    axis = re.search(r'<g class="axis y[^"]*">(.*?)</g>\s*</g>\s*<g class="axis x', svg, re.S)
    block = axis.group(1) if axis else svg.split('class="axis y', 1)[1].split('class="axis x', 1)[0]
    return re.findall(r"<text[^>]*>([^<]*)</text>", block)


# Imported in the tests, not at collection: pygal's import hook (removed by stats.charts)
# would turn the collector's imports into errors, as in tests/integration/test_statistics.py.
CHART_NAMES = ["abandonment", "answer-times", "trend", "volume-by-day", "volume-by-hour"]


@pytest.mark.parametrize("name", CHART_NAMES)
def test_count_axes_are_whole_numbers(name: str) -> None:
    from permanence.stats import charts

    assert sorted(charts.CHARTS) == CHART_NAMES
    svg = charts.CHARTS[name](_stats([1, 2, 3]), "fr").decode()
    labels = [label for label in _y_labels(svg) if label.strip()]
    assert labels, "no y-axis labels found"
    assert all(re.fullmatch(r"\d+", label) for label in labels), labels
    assert len(set(labels)) == len(labels), labels  # no tick repeated by rounding


def test_charts_speak_the_language_asked_for() -> None:
    from permanence.stats import charts

    stats = _stats([1, 2, 3])
    english = charts.volume_by_day(stats, "en").decode()
    french = charts.volume_by_day(stats, "fr").decode()
    assert "Calls per day" in english and "Answered" in english and "Appels" not in english
    assert "Appels par jour" in french and "Décrochés" in french and "Answered" not in french
    assert "rate 25.0%" in charts.abandonment(_stats([1, 1, 2]), "en").decode()
    assert "taux 25,0\u00a0%" in charts.abandonment(_stats([1, 1, 2]), "fr").decode()
