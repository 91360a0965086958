"""Compliance check of off-boardings: every sub-processor confirmed its deletion."""

from __future__ import annotations

from sqlalchemy import select

from permanence.accounts.model import Account, AccountStatus
from permanence.checks import CheckRun, check
from permanence.contracts.deletions import CONFIRMATION_DAYS, state_of


@check(
    "offboarding.subprocessors",
    "Every sub-processor confirmed the deletion of an off-boarded client's data (28(3)(g))",
)
def _confirmed(run: CheckRun) -> tuple[bool, str, list[str]]:
    with run.session() as s:
        gone = [
            (a.id, a.slug)
            for a in s.execute(
                select(Account.id, Account.slug)
                .where(Account.status == AccountStatus.OFFBOARDED)
                .order_by(Account.slug)
            )
        ]
    late: list[str] = []
    waiting = complete = 0
    for account_id, slug in gone:
        with run.session(account_id) as s:
            state = state_of(s, account_id)
        if state.complete:
            complete += 1
            continue
        waiting += 1
        for line in state.lines:
            if line.overdue(run.now):
                late.append(
                    f"account {slug}: {line.code} has not confirmed the deletion "
                    f"({CONFIRMATION_DAYS} days passed)"
                )
    if late:
        return False, f"{len(late)} deletion confirmation(s) overdue", late
    return (
        True,
        f"{complete} off-boarding(s) complete, {waiting} awaiting confirmations within "
        f"{CONFIRMATION_DAYS} days",
        [],
    )
