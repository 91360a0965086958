"""The compliance check on audits: none overdue, no follow-up action overdue."""

from __future__ import annotations

from permanence.audits import service as audits
from permanence.checks import CheckRun, check
from permanence.render import paris_date


@check("audits.due", "Audits of the service and sub-processors, and their actions, on time")
def _audits_due(run: CheckRun) -> tuple[bool, str, list[str]]:
    with run.session() as s:
        found = audits.overdue(s, paris_date(run.now))
    evidence = found.audits + found.actions
    if evidence:
        return (
            False,
            f"{len(found.audits)} audit(s) and {len(found.actions)} follow-up action(s) overdue",
            evidence,
        )
    summary = "no audit or follow-up action overdue"
    if found.never_audited:
        summary += f"; never audited: {', '.join(found.never_audited)}"
    return True, summary, []
