"""SVG charts drawn server-side with pygal from the statistics (aggregates only).

The SVG needs no JavaScript: pygal's tooltip script is switched off (``js=[]``), so a chart
is a plain image that an ``<img>`` shows and a strict Content-Security-Policy allows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from xml.etree import ElementTree

import pygal
from pygal.style import Style

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


def volume_by_hour(stats: AccountStats) -> bytes:
    chart = pygal.StackedBar(**_config("Appels par heure de la journée (heure de Paris)"))
    chart.x_labels = [f"{h} h" for h in range(24)]
    chart.add("Décrochés", [c.answered for c in stats.by_hour])
    chart.add("Messagerie", [c.voicemail for c in stats.by_hour])
    chart.add("Abandonnés", [c.abandoned for c in stats.by_hour])
    chart.add("Échecs", [c.failed for c in stats.by_hour])
    return _render(chart)


def volume_by_day(stats: AccountStats) -> bytes:
    chart = pygal.StackedBar(
        **_config("Appels par jour", x_label_rotation=45, show_minor_x_labels=False)
    )
    days = stats.by_day
    chart.x_labels = [d.strftime("%d/%m") for d, _ in days]
    step = max(1, len(days) // 15)
    chart.x_labels_major = [d.strftime("%d/%m") for i, (d, _) in enumerate(days) if i % step == 0]
    chart.add("Décrochés", [c.answered for _, c in days])
    chart.add("Messagerie", [c.voicemail for _, c in days])
    chart.add("Abandonnés", [c.abandoned for _, c in days])
    chart.add("Échecs", [c.failed for _, c in days])
    return _render(chart)


def answer_times(stats: AccountStats) -> bytes:
    title = "Délai de décroché"
    if stats.answer_s_avg is not None and stats.answer_s_p90 is not None:
        title += f" (moyenne {stats.answer_s_avg:.0f} s, 90 % sous {stats.answer_s_p90:.0f} s)"
    chart = pygal.Bar(**_config(title, show_legend=False))
    chart.x_labels = hist_labels(ANSWER_EDGES)
    chart.add("Appels décrochés", stats.answer_hist)
    return _render(chart)


def abandonment(stats: AccountStats) -> bytes:
    title = "Appels abandonnés : au bout de combien de temps"
    if stats.abandon_rate is not None:
        title += f" (taux {100 * stats.abandon_rate:.1f} %)"
    chart = pygal.Bar(**_config(title, show_legend=False))
    chart.x_labels = hist_labels(ABANDON_EDGES)
    chart.add("Appels abandonnés", stats.abandon_hist)
    return _render(chart)


def trend(stats: AccountStats) -> bytes:
    chart = pygal.Line(**_config("Tendance mensuelle", dots_size=4))
    chart.x_labels = [m for m, _ in stats.by_month]
    chart.add("Reçus", [c.received for _, c in stats.by_month])
    chart.add("Décrochés", [c.answered for _, c in stats.by_month])
    chart.add("Abandonnés", [c.abandoned for _, c in stats.by_month])
    chart.add("Messagerie", [c.voicemail for _, c in stats.by_month])
    return _render(chart)


CHARTS: dict[str, Callable[[AccountStats], bytes]] = {
    "volume-by-hour": volume_by_hour,
    "volume-by-day": volume_by_day,
    "answer-times": answer_times,
    "abandonment": abandonment,
    "trend": trend,
}
# The trend looks back a year; the other charts show the period asked for.
TREND_DAYS = 365
