"""``permanence telephony …`` for cron, as a user runs it: a call whose final status never came
is expired (no provider API configured), and the download pass runs and says what it did."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from permanence.calls import service as calls
from permanence.calls.model import Call
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.db import utcnow
from permanence.runtime import Runtime
from tests.conftest import cli_env, run_cli
from tests.factories import OPERATOR_ID, make_account


def test_resolve_stale_and_recordings_from_the_command_line(
    rt: Runtime, settings: Settings
) -> None:
    account = make_account(rt, "plomberie-durand").id
    old = utcnow() - dt.timedelta(minutes=settings.telephony_stale_minutes + 5)
    fresh = utcnow()
    for started in (old, fresh):
        with rt.db.session(AccessContext(Role.OPERATOR, "test", OPERATOR_ID)) as s:
            calls.open_call(
                s, rt.keyring, dialled="+33240000001", caller_number=None, started_at=started
            )
    env = cli_env(settings)
    done = run_cli(env, "telephony", "resolve-stale")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "resolved=0 expired=1 still_open=0"
    again = run_cli(env, "telephony", "resolve-stale")
    assert again.stdout.strip() == "resolved=0 expired=0 still_open=0"
    with rt.db.session(AccessContext.system("test", account)) as s:
        got = {c.started_at: (c.status, c.outcome) for c in s.scalars(select(Call))}
    assert sorted(got.values(), key=str) == [("expired", "expired"), ("ringing", None)]
    recordings = run_cli(env, "telephony", "recordings")
    assert recordings.returncode == 0, recordings.stderr
    assert recordings.stdout.strip() == "stored=0 deleted_at_provider=0 retrying=0 failed=0"
