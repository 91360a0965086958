"""The dated compliance report: every check, pass or fail, with its evidence."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from permanence.compliance.checks import CheckResult
from permanence.render import render


def report_html(results: Sequence[CheckResult], *, at: dt.datetime, deployment: str) -> str:
    return render(
        "permanence.compliance",
        "report.html",
        results=results,
        at=at,
        deployment=deployment,
        failed=[r for r in results if not r.passed],
    )
