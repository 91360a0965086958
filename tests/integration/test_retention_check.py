"""The retention check covers recordings (the CNIL's six months for call recordings) and
counts exactly what the retention sweep deletes: same records, same starting events."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from permanence.compliance import checks
from permanence.context import AccessContext
from permanence.db import utcnow
from permanence.filestore import LocalStore
from permanence.messages.model import Message
from permanence.recordings.model import Recording
from permanence.retention import service as retention
from permanence.runtime import Runtime
from tests.factories import caller_with_records, make_account


def _check(rt: Runtime) -> checks.CheckResult:
    return next(r for r in checks.run_checks(rt) if r.code == "retention.records")


@pytest.mark.gdpr("Art. 5(1)(e)")
def test_art5_1_e_a_recording_past_six_months_fails_the_check_until_the_sweep_runs(
    rt: Runtime,
) -> None:
    account = make_account(rt, "plomberie-durand")  # recordings kept P6M (its mandate)
    rec = caller_with_records(
        rt, account.id, first="Luc", last="Bernard", phone="0611223344", email="l@b.example"
    )
    system = AccessContext.system("test", account.id)
    with rt.db.session(system) as s:
        s.execute(
            update(Recording)
            .where(Recording.id == rec.recording_id)
            .values(created_at=utcnow() - dt.timedelta(days=170))
        )
    assert _check(rt).passed  # under six months
    with rt.db.session(system) as s:
        s.execute(
            update(Recording)
            .where(Recording.id == rec.recording_id)
            .values(created_at=utcnow() - dt.timedelta(days=190))
        )
    result = _check(rt)
    assert result.evidence == ["plomberie-durand: 1 recordings"]
    report = retention.sweep(rt.db, LocalStore(rt.settings.recordings_dir))
    assert report.counts == {("plomberie-durand", "recordings"): 1}
    assert _check(rt).passed


@pytest.mark.gdpr("Art. 5(1)(e)")
def test_art5_1_e_the_check_and_the_sweep_run_retention_from_the_same_event(
    rt: Runtime,
) -> None:
    """A message taken long ago but acknowledged yesterday: the sweep runs its period from
    when it was taken (as the Art. 30 records say), so the check must call it overdue too."""
    account = make_account(rt, "plomberie-durand")
    rec = caller_with_records(
        rt, account.id, first="Anne", last="Morel", phone="0611223355", email="a@m.example"
    )
    with rt.db.session(AccessContext.system("test", account.id)) as s:
        s.execute(
            update(Message)
            .where(Message.id == rec.message_id)
            .values(
                created_at=utcnow() - dt.timedelta(days=400),
                acknowledged_at=utcnow() - dt.timedelta(days=1),
            )
        )
    dry = retention.sweep(rt.db, LocalStore(rt.settings.recordings_dir), dry_run=True)
    evidence = _check(rt).evidence
    assert dry.counts[("plomberie-durand", "messages")] == 1
    assert evidence and "1 messages" in evidence[0]
