"""HTML documents (reports, records, certificates) from Jinja2 templates, autoescaped.

Each feature keeps its templates in its own ``templates/`` folder. Dates are shown in Paris
time, the way the French users who read these documents expect them.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.numbers import format_percent

if TYPE_CHECKING:
    from jinja2 import Environment

PARIS = ZoneInfo("Europe/Paris")


def paris_date(moment: dt.datetime) -> dt.date:
    """The calendar day in Paris at ``moment`` (aware): what "today" is to the French users
    who enter and read the dates (from 23:00 or 22:00 UTC, the next day in Paris)."""
    return moment.astimezone(PARIS).date()


def paris(value: dt.datetime | None, fmt: str = "%d/%m/%Y %H:%M") -> str:
    """A UTC datetime as Paris wall-clock time ("" for None)."""
    if value is None:
        return ""
    return value.astimezone(PARIS).strftime(fmt)


def percent(value: float | None, lang: str = "fr") -> str:
    """A rate with one decimal, the language's way (babel.numbers): "12,5 %" (French, with a
    no-break space), "12.5%" (English); "–" for none."""
    if value is None:
        return "–"
    pattern = Locale.parse(lang).percent_formats[None].pattern.replace("0", "0.0", 1)
    return format_percent(value, pattern, locale=lang)


@cache
def _env(package: str) -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["paris"] = paris
    return env


def render(package: str, template: str, **values: Any) -> str:
    return _env(package).get_template(template).render(**values)
