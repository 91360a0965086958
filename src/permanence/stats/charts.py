"""SVG charts drawn server-side with pygal from the statistics (aggregates only).

The SVG needs no JavaScript: pygal's tooltip script is switched off (``js=[]``), so a chart
is a plain image that an ``<img>`` shows and a strict Content-Security-Policy allows.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from xml.etree import ElementTree

import pygal
from pygal.style import Style

from permanence.render import percent
from permanence.stats.service import (
    ABANDON_EDGES,
    ANSWER_EDGES,
    AccountStats,
    hist_labels,
)

# pygal appends a legacy import hook (for its map plugins, which we do not use) that has no
# find_spec(): every failed import anywhere in the process then raises an ImportWarning.
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "PluginImportFixer"]

STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#222",
    foreground_strong="#111",
    foreground_subtle="#666",
    colors=("#2b6cb0", "#2f855a", "#c05621", "#c53030", "#718096"),
    font_family="DejaVu Sans, Helvetica, Arial, sans-serif",
    title_font_size=16,
    label_font_size=11,
    legend_font_size=12,
)


def _config(title: str, **kw: object) -> dict[str, object]:
    return {
        "title": title,
        "style": STYLE,
        "js": [],  # no script: readable without JavaScript, nothing fetched
        "width": 800,
        "height": 360,
        "explicit_size": True,
        "legend_at_bottom": True,
        "print_values": False,
        "disable_xml_declaration": False,
        **kw,
    }


def _render(chart: pygal.Graph) -> bytes:
    """The SVG without any <script>: pygal embeds its configuration as a script even with
    ``js=[]``; a chart shown as an image needs none."""
    root = chart.render_tree()
    for parent in list(root.iter()):
        for child in list(parent):
            if str(child.tag).rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    body: bytes = ElementTree.tostring(root, encoding="utf-8")
    if not body.startswith(b"<?xml"):
        body = b"<?xml version='1.0' encoding='utf-8'?>\n" + body
    return body


# The words of the charts, French then English (the pages ask for their own language).
WORDS: dict[str, tuple[str, str]] = {
    "by_hour": (
        "Appels par heure de la journée (heure de Paris)",
        "Calls per hour of the day (Paris time)",
    ),
    "by_day": ("Appels par jour", "Calls per day"),
    "answered": ("Décrochés", "Answered"),
    "voicemail": ("Messagerie", "Voicemail"),
    "abandoned": ("Abandonnés", "Abandoned"),
    "failed": ("Échecs", "Failed"),
    "received": ("Reçus", "Received"),
    "answer_times": ("Délai de décroché", "Time to answer"),
    "answer_stats": ("moyenne {avg} s, 90 % sous {p90} s", "average {avg} s, 90% within {p90} s"),
    "answered_calls": ("Appels décrochés", "Answered calls"),
    "abandonment": (
        "Appels abandonnés : au bout de combien de temps",
        "Abandoned calls: after how long",
    ),
    "abandon_rate": ("taux {rate}", "rate {rate}"),
    "abandoned_calls": ("Appels abandonnés", "Abandoned calls"),
    "trend": ("Tendance mensuelle", "Monthly trend"),
}  # fmt: skip
LANGUAGES = ("fr", "en")


def _w(key: str, lang: str) -> str:
    fr, en = WORDS[key]
    return en if lang == "en" else fr


def _counts_axis(*series: list[int], stacked: bool = False) -> dict[str, object]:
    """A count axis in whole numbers: ticks 0, step, 2·step… up to the highest bar (pygal's
    own ticks fall on 0.5 for small counts); at most about eight ticks."""
    top = (
        max((sum(v) for v in zip(*series, strict=True)), default=0)
        if stacked
        else max((max(s, default=0) for s in series), default=0)
    )
    step = max(1, math.ceil(top / 8))
    return {"y_labels": list(range(0, top + step + 1, step)), "value_formatter": _whole}


def _whole(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def volume_by_hour(stats: AccountStats, lang: str = "fr") -> bytes:
    series = {
        "answered": [c.answered for c in stats.by_hour],
        "voicemail": [c.voicemail for c in stats.by_hour],
        "abandoned": [c.abandoned for c in stats.by_hour],
        "failed": [c.failed for c in stats.by_hour],
    }
    chart = pygal.StackedBar(
        **_config(_w("by_hour", lang), **_counts_axis(*series.values(), stacked=True))
    )
    chart.x_labels = [f"{h} h" for h in range(24)]
    for key, values in series.items():
        chart.add(_w(key, lang), values)
    return _render(chart)


def volume_by_day(stats: AccountStats, lang: str = "fr") -> bytes:
    days = stats.by_day
    series = {
        "answered": [c.answered for _, c in days],
        "voicemail": [c.voicemail for _, c in days],
        "abandoned": [c.abandoned for _, c in days],
        "failed": [c.failed for _, c in days],
    }
    chart = pygal.StackedBar(
        **_config(
            _w("by_day", lang),
            x_label_rotation=45,
            show_minor_x_labels=False,
            **_counts_axis(*series.values(), stacked=True),
        )
    )
    shown = "%d/%m" if lang == "fr" else "%m/%d"
    chart.x_labels = [d.strftime(shown) for d, _ in days]
    step = max(1, len(days) // 15)
    chart.x_labels_major = [d.strftime(shown) for i, (d, _) in enumerate(days) if i % step == 0]
    for key, values in series.items():
        chart.add(_w(key, lang), values)
    return _render(chart)


def answer_times(stats: AccountStats, lang: str = "fr") -> bytes:
    title = _w("answer_times", lang)
    if stats.answer_s_avg is not None and stats.answer_s_p90 is not None:
        figures = _w("answer_stats", lang).format(
            avg=f"{stats.answer_s_avg:.0f}", p90=f"{stats.answer_s_p90:.0f}"
        )
        title += f" ({figures})"
    chart = pygal.Bar(**_config(title, show_legend=False, **_counts_axis(stats.answer_hist)))
    chart.x_labels = hist_labels(ANSWER_EDGES)
    chart.add(_w("answered_calls", lang), stats.answer_hist)
    return _render(chart)


def abandonment(stats: AccountStats, lang: str = "fr") -> bytes:
    title = _w("abandonment", lang)
    if stats.abandon_rate is not None:
        rate = percent(stats.abandon_rate, lang)
        title += f" ({_w('abandon_rate', lang).format(rate=rate)})"
    chart = pygal.Bar(**_config(title, show_legend=False, **_counts_axis(stats.abandon_hist)))
    chart.x_labels = hist_labels(ABANDON_EDGES)
    chart.add(_w("abandoned_calls", lang), stats.abandon_hist)
    return _render(chart)


def trend(stats: AccountStats, lang: str = "fr") -> bytes:
    series = {
        "received": [c.received for _, c in stats.by_month],
        "answered": [c.answered for _, c in stats.by_month],
        "abandoned": [c.abandoned for _, c in stats.by_month],
        "voicemail": [c.voicemail for _, c in stats.by_month],
    }
    chart = pygal.Line(**_config(_w("trend", lang), dots_size=4, **_counts_axis(*series.values())))
    chart.x_labels = [m for m, _ in stats.by_month]
    for key, values in series.items():
        chart.add(_w(key, lang), values)
    return _render(chart)


CHARTS: dict[str, Callable[[AccountStats, str], bytes]] = {
    "volume-by-hour": volume_by_hour,
    "volume-by-day": volume_by_day,
    "answer-times": answer_times,
    "abandonment": abandonment,
    "trend": trend,
}
# The trend looks back a year; the other charts show the period asked for.
TREND_DAYS = 365
