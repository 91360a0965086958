"""Reminders to the controller's rights contact: seven days ahead, once a day, no person named."""

from __future__ import annotations

import datetime as dt

from permanence.context import AccessContext, Role
from permanence.rights import clock
from permanence.rights import service as rights
from permanence.rights.model import Kind
from permanence.runtime import Runtime
from tests.conftest import SmtpSink
from tests.factories import ctx_for, make_account, make_caller

PARIS = clock.PARIS


def test_reminders_start_seven_days_before_the_due_day_and_come_once_a_day(
    rt: Runtime, smtp: SmtpSink
) -> None:
    account = make_account(rt)
    make_caller(rt, account.id, first="Camille", last="Martin", phone="06 39 98 12 34")
    received = dt.datetime(2027, 6, 15, 10, tzinfo=PARIS)  # due Thursday 15 July 2027
    with rt.db.session(ctx_for(account.id, Role.OPERATOR)) as s:
        req = rights.submit(
            s,
            rt.keyring,
            rights.Intake(
                kind=Kind.ACCESS,
                requester=rights.Requester(phone="06 39 98 12 34"),
                received_at=received,
            ),
            now=received,
        )
        request_id = req.id
    outbox = rights.Outbox.from_settings(rt.settings)
    system = AccessContext.system("test:rights-sweep", account.id)

    def sweep(now: dt.datetime) -> list[rights.DueReminder]:
        with rt.db.session(system) as s:
            return rights.send_reminders(s, outbox, now.astimezone(dt.UTC), send=True)

    assert sweep(dt.datetime(2027, 7, 7, 9, tzinfo=PARIS)) == []  # eight days ahead
    assert smtp.messages == []
    due = sweep(dt.datetime(2027, 7, 8, 9, tzinfo=PARIS))  # seven days ahead
    assert [(d.request_id, d.days_left) for d in due] == [(request_id, 7)]
    assert sweep(dt.datetime(2027, 7, 8, 20, tzinfo=PARIS)) == []  # the same day: once
    assert [d.days_left for d in sweep(dt.datetime(2027, 7, 16, 9, tzinfo=PARIS))] == [-1]

    assert [to for _f, to, _raw in smtp.messages] == [["secretariat@cabinet-lefevre.example"]] * 2
    first, late = smtp.bodies()
    assert "à rendre dans 7 jour(s)" in first and "15/07/2027" in first
    assert "en retard" in late
    for body in (first, late):
        assert str(request_id) in body
        for personal in ("Camille", "Martin", "06 39", "639981234", "camille.martin"):
            assert personal not in body
