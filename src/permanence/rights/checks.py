"""Compliance check for rights requests: none past its Art. 12(3) due date."""

from __future__ import annotations

from permanence.checks import CheckRun, check
from permanence.rights import service as rights


@check("rights.overdue", "No data-subject request past its due date (Art. 12(3))")
def _overdue(run: CheckRun) -> tuple[bool, str, list[str]]:
    bad: list[str] = []
    total = 0
    for account in run.accounts():
        with run.session(account.id) as s:
            n = rights.overdue_count(s, run.now)
            total += len(rights.due_soon(s, run.now, 0))
        if n:
            bad.append(f"{account.slug}: {n} request(s) overdue")
    if bad:
        return False, f"{len(bad)} account(s) with overdue requests", bad
    return True, f"no request overdue; {total} due today", []
