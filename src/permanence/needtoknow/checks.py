"""``access.need_to_know``: every health-data account has the operators who serve it
assigned (which turns the need-to-know rule on for it)."""

from __future__ import annotations

from permanence.checks import CheckRun, check


@check("access.need_to_know", "Health-data accounts are opened by their assigned operators only")
def _need_to_know(run: CheckRun) -> tuple[bool, str, list[str]]:
    from permanence.needtoknow.service import _active, handles_health_data

    bad, health = [], 0
    for a in run.accounts():
        with run.session(a.id) as s:
            if not handles_health_data(s, a.id):
                continue
            health += 1
            if not _active(s, a.id):
                bad.append(
                    f"{a.slug}: health data, but no operator assigned (any operator may open it)"
                )
    if bad:
        return False, f"{len(bad)} health-data account(s) without need-to-know", bad
    return True, f"{health} health-data account(s), each opened by its assigned operators only", []
