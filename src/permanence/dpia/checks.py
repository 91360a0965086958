"""``dpia.current``: every processing that needs a DPIA has a validated, current one."""

from __future__ import annotations

from permanence.checks import CheckRun, check


@check("dpia.current", "Every processing that needs a DPIA has a validated, current one")
def _dpia(run: CheckRun) -> tuple[bool, str, list[str]]:
    from permanence.dpia.service import account_status

    bad, needed = [], 0
    for a in run.accounts():
        with run.session(a.id) as s:
            for st in account_status(s, run.now):
                needed += 1
                if st.problem:
                    bad.append(f"{a.slug} ({st.processing}): {st.problem}")
    if bad:
        return False, f"{len(bad)} DPIA(s) missing or outdated (Art. 35)", bad
    return True, f"{needed} processing(s) needing a DPIA, each validated and current", []
