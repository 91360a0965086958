"""Statistics on a scripted day of calls, each expected figure worked out by hand below.

The plumber's Tuesday 10 March 2026 (Paris is UTC+1 that day):

| # | rings (Paris) | outcome                                   | answer | talk | abandoned after |
|---|---------------|-------------------------------------------|--------|------|-----------------|
| 1 | 00:30:00      | hangs up before an answer                 |        |      | 20 s            |
| 2 | 09:00:00      | answered, message taken                   | 5 s    | 180  |                 |
| 3 | 09:10:00      | answered, appointment booked              | 12 s   | 120  |                 |
| 4 | 09:20:00      | answered; provider says talk 55 s         | 25 s   | 55   |                 |
| 5 | 10:05:00      | answered, message taken (acknowledged)    | 40 s   | 600  |                 |
| 6 | 10:30:00      | answered                                  | 70 s   | 60   |                 |
| 7 | 11:00:00      | hangs up while ringing (completed)        |        |      | 8 s             |
| 8 | 11:15:00      | hangs up while ringing (canceled)         |        |      | 45 s            |
| 9 | 14:00:00      | nobody free: voicemail (30 s recording)   |        |      |                 |
|10 | 14:30:00      | nobody free: voicemail                    |        |      |                 |
|11 | 16:00:00      | busy                                      |        |      |                 |

Around it: Monday 9 March 23:30 (abandoned after 15 s), Wednesday 11 March 09:00 (answered
after 3 s, talk 90 s), Tuesday 31 March 23:30 (summer time, abandoned after 5 s), Wednesday
1 April 00:30 (answered: April in Paris, still 31 March in UTC) and one call of another account.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from permanence.calls import outcome as outcomes
from permanence.calls import presence
from permanence.calls import service as calls
from permanence.calls.model import Call
from permanence.calls.presence_model import OperatorDailyStats
from permanence.context import AccessContext, Role
from permanence.messages import service as messages
from permanence.messages.model import Appointment, Message
from permanence.recordings.model import Recording
from permanence.runtime import Runtime
from permanence.stats import service as stats
from permanence.stats import usage
from permanence.stats.service import Period
from tests.factories import OPERATOR_ID, ctx_for, make_account, make_caller

PARIS_WINTER = dt.timezone(dt.timedelta(hours=1))
PARIS_SUMMER = dt.timezone(dt.timedelta(hours=2))
PLUMBER_DID = "+33240000001"
MEDICAL_DID = "+33478000001"
CALLER = {"first": "Camille", "last": "Martin", "phone": "01 99 00 56 78"}
SECRET_TEXT = "Fuite sous l'évier de la cuisine"
PERSONAL = ["Camille", "Martin", "0199005678", "+33199005678", "01 99 00 56 78", "évier"]


def at(day: int, h: int, m: int, s: int = 0, month: int = 3) -> dt.datetime:
    tz = PARIS_SUMMER if (month, day) >= (3, 29) else PARIS_WINTER
    return dt.datetime(2026, month, day, h, m, s, tzinfo=tz)


@dataclass
class Day:
    plumber: uuid.UUID
    medical: uuid.UUID


def _open(rt: Runtime, did: str, started: dt.datetime) -> uuid.UUID:
    """An incoming call, routed by its dialled number (the context has no account yet)."""
    with rt.db.session(AccessContext(Role.OPERATOR, "test", OPERATOR_ID)) as s:
        opened = calls.open_call(
            s, rt.keyring, dialled=did, caller_number=CALLER["phone"], started_at=started
        )
        return opened.call.id


def _answered(
    rt: Runtime,
    account: uuid.UUID,
    started: dt.datetime,
    answer_s: int,
    talk_s: int,
    *,
    provider_talk: int | None = None,
    wrap_up_s: int | None = None,
    did: str = PLUMBER_DID,
) -> uuid.UUID:
    call_id = _open(rt, did, started)
    answered = started + dt.timedelta(seconds=answer_s)
    ended = answered + dt.timedelta(seconds=talk_s)
    with rt.db.session(ctx_for(account)) as s:
        call = calls.get_call(s, call_id)
        calls.answer(s, call, at=answered)
        call.talk_s = provider_talk
        calls.complete(s, call, at=ended)
    if wrap_up_s is not None:
        with rt.db.session(ctx_for(account)) as s:
            presence.set_state(s, "free", at=ended + dt.timedelta(seconds=wrap_up_s))
    return call_id


def _unanswered(
    rt: Runtime,
    account: uuid.UUID,
    started: dt.datetime,
    after_s: int,
    status: str,
    *,
    voicemail: bool = False,
) -> uuid.UUID:
    """What the provider's status callbacks leave on a call nobody answered."""
    call_id = _open(rt, PLUMBER_DID, started)
    with rt.db.session(AccessContext.system("test", account)) as s:
        call = s.get(Call, call_id)
        assert call is not None
        call.status = status
        call.ended_at = started + dt.timedelta(seconds=after_s)
        call.ended_reason = status
        call.voicemail = voicemail
        outcomes.settle(call)
    return call_id


@pytest.fixture
def day(rt: Runtime) -> Day:
    plumber = make_account(rt, "plomberie-durand").id
    medical = make_account(rt, "cabinet-lefevre").id
    make_caller(rt, plumber, first=CALLER["first"], last=CALLER["last"], phone=CALLER["phone"])

    def unanswered(started: dt.datetime, after_s: int, status: str, **kw: bool) -> uuid.UUID:
        return _unanswered(rt, plumber, started, after_s, status, **kw)

    unanswered(at(10, 0, 30), 20, "completed")
    c2 = _answered(rt, plumber, at(10, 9, 0), 5, 180, wrap_up_s=30)
    c3 = _answered(rt, plumber, at(10, 9, 10), 12, 120, wrap_up_s=20)
    _answered(rt, plumber, at(10, 9, 20), 25, 60, provider_talk=55, wrap_up_s=10)
    c5 = _answered(rt, plumber, at(10, 10, 5), 40, 600, wrap_up_s=60)
    _answered(rt, plumber, at(10, 10, 30), 70, 60)  # still wrapping up at the end of the day
    unanswered(at(10, 11, 0), 8, "completed")
    unanswered(at(10, 11, 15), 45, "canceled")
    c9 = unanswered(at(10, 14, 0), 85, "completed", voicemail=True)
    unanswered(at(10, 14, 30), 60, "completed", voicemail=True)
    unanswered(at(10, 16, 0), 2, "busy")
    # Around the day.
    unanswered(at(9, 23, 30), 15, "completed")
    _answered(rt, plumber, at(11, 9, 0), 3, 90)
    unanswered(at(31, 23, 30), 5, "completed")
    _answered(rt, plumber, at(1, 0, 30, month=4), 10, 30)
    _answered(rt, medical, at(10, 9, 5), 1, 300, did=MEDICAL_DID)

    with rt.db.session(ctx_for(plumber)) as s:
        caller_id = s.get(Call, c2).caller_id  # type: ignore[union-attr]
        assert caller_id is not None
        values = {
            "last_name": CALLER["last"],
            "phone": CALLER["phone"],
            "address": "1 rue A, 44000 Nantes",
            "urgency": "à planifier",
            "description": SECRET_TEXT,
        }
        m1 = messages.take_message(
            s, rt.keyring, caller_id=caller_id, purpose="intervention", values=values, call_id=c2
        )
        m2 = messages.take_message(
            s, rt.keyring, caller_id=caller_id, purpose="intervention", values=values, call_id=c5
        )
        slot = at(12, 9, 0)
        a = messages.book_appointment(
            s,
            rt.keyring,
            caller_id=caller_id,
            purpose="appointment",
            starts_at=slot,
            ends_at=slot + dt.timedelta(minutes=30),
            values={
                "last_name": CALLER["last"],
                "phone": CALLER["phone"],
                "address": "1 rue A, 44000 Nantes",
                "preferred_slot": slot.isoformat(),
            },
            call_id=c3,
        )
        # Taken during the scripted day (the services stamp "now").
        m1.created_at = at(10, 9, 2)
        m2.created_at = at(10, 10, 10)
        a.created_at = at(10, 9, 11)
        m2.acknowledged_at = at(10, 12, 0)
        s.add(
            Recording(
                account_id=plumber,
                call_id=c9,
                caller_id=caller_id,
                mandate_id=s.get(Call, c9).mandate_id,  # type: ignore[union-attr]
                kind="voicemail",
                provider_sid="RE-test-voicemail",
                storage_key="none",
                duration_s=30,
                created_at=at(10, 14, 1, 30),
            )
        )
    return Day(plumber, medical)


def _account_stats(rt: Runtime, account: uuid.UUID, period: Period) -> stats.AccountStats:
    ctx = AccessContext(Role.SUPERVISOR, "test", uuid.uuid4(), account)
    with rt.db.session(ctx, readonly=True) as s:
        return stats.account_statistics(s, account, period)


TUESDAY = Period(dt.date(2026, 3, 10), dt.date(2026, 3, 10))


def test_calls_received_answered_abandoned_voicemail_and_failed(rt: Runtime, day: Day) -> None:
    st = _account_stats(rt, day.plumber, TUESDAY)
    assert st.calls.as_dict() == {
        "received": 11,
        "answered": 5,
        "abandoned": 3,  # 00:30 (20 s), 11:00 (8 s), 11:15 (45 s)
        "voicemail": 2,
        "failed": 1,
        "expired": 0,
        "transferred": 0,
        "callback_request": 0,
    }
    assert st.in_progress == 0
    assert st.answer_rate == pytest.approx(5 / 11)
    assert st.abandon_rate == pytest.approx(3 / 11)


def test_answer_time_average_and_90th_percentile(rt: Runtime, day: Day) -> None:
    st = _account_stats(rt, day.plumber, TUESDAY)
    # 5, 12, 25, 40, 70 s: mean 152 / 5; p90 at rank 0.9 × 4 = 3.6 → 40 + 0.6 × (70 − 40).
    assert st.answer_s_avg == pytest.approx(30.4, abs=0.01)
    assert st.answer_s_p90 == pytest.approx(58.0, abs=0.01)
    assert st.answer_hist == [1, 1, 1, 1, 1]  # ≤10, 10–20, 20–30, 30–60, >60


def test_abandoned_after_how_long(rt: Runtime, day: Day) -> None:
    st = _account_stats(rt, day.plumber, TUESDAY)
    assert st.abandon_after_s_avg == pytest.approx((20 + 8 + 45) / 3, abs=0.01)
    assert st.abandon_hist == [1, 1, 1, 0]  # ≤10 (8), 10–30 (20), 30–60 (45), >60


def test_talk_time_prefers_the_providers_figure(rt: Runtime, day: Day) -> None:
    st = _account_stats(rt, day.plumber, TUESDAY)
    assert st.talk_s_total == 180 + 120 + 55 + 600 + 60
    assert st.talk_s_avg == pytest.approx(1015 / 5, abs=0.01)


def test_messages_appointments_and_recordings(rt: Runtime, day: Day) -> None:
    st = _account_stats(rt, day.plumber, TUESDAY)
    assert (st.messages_taken, st.messages_unacknowledged) == (2, 1)
    assert (st.appointments_booked, st.appointments_cancelled) == (1, 0)
    assert (st.recordings, st.recording_s) == (1, 30)


def test_calls_by_paris_hour_and_day(rt: Runtime, day: Day) -> None:
    st = _account_stats(rt, day.plumber, Period(dt.date(2026, 3, 9), dt.date(2026, 3, 11)))
    per_hour = {h: c.as_dict() for h, c in enumerate(st.by_hour) if c.received}
    assert per_hour[0]["abandoned"] == 1  # 00:30 Paris is still Monday in UTC
    assert per_hour[9] == {
        "received": 4,
        "answered": 4,
        "abandoned": 0,
        "voicemail": 0,
        "failed": 0,
        "expired": 0,
        "transferred": 0,
        "callback_request": 0,
    }
    assert per_hour[10]["answered"] == 2
    assert per_hour[11]["abandoned"] == 2
    assert per_hour[14]["voicemail"] == 2
    assert per_hour[16]["failed"] == 1
    assert per_hour[23]["abandoned"] == 1  # Monday 23:30
    assert [(d.isoformat(), c.received) for d, c in st.by_day] == [
        ("2026-03-09", 1),
        ("2026-03-10", 11),
        ("2026-03-11", 1),
    ]


def test_other_accounts_calls_are_not_counted(rt: Runtime, day: Day) -> None:
    st = _account_stats(rt, day.medical, TUESDAY)
    assert (st.calls.received, st.calls.answered, st.talk_s_total) == (1, 1, 300)


def test_usage_report_for_the_month(rt: Runtime, day: Day) -> None:
    ctx = AccessContext(Role.CLIENT, "test", uuid.uuid4(), day.plumber)
    with rt.db.session(ctx, readonly=True) as s:
        u = usage.usage_report(s, day.plumber, "2026-03")
    assert u.as_dict() == {
        "account": "plomberie-durand",
        "month": "2026-03",
        "calls_received": 14,  # 11 on Tuesday, 9th, 11th and 31st; not 1 April 00:30
        "calls_answered": 6,
        "calls_voicemail": 2,
        "calls_abandoned": 5,
        "talk_seconds": 1015 + 90,
        "billed_minutes": 3 + 2 + 1 + 10 + 1 + 2,  # minutes started, call by call
        "messages": 2,
        "appointments": 1,
        "recordings": 1,
        "recording_seconds": 30,
        "calls_failed": 1,
        "calls_expired": 0,
        "calls_transferred": 0,
        "calls_outbound": 0,
        "calls_callback_request": 0,
    }
    csv_text = usage.to_csv(u)
    assert csv_text.splitlines()[1].startswith("plomberie-durand,2026-03,14,6,2,5,1105,19,")


def test_operator_daily_aggregates_and_wrap_up(rt: Runtime, day: Day) -> None:
    with rt.db.session(ctx_for(day.plumber), readonly=True) as s:
        mine = stats.operator_statistics(s, OPERATOR_ID, TUESDAY)
    # Calls 2–6 and the medical practice's call at 09:05: 1015 s + 300 s of talk. Wrap-ups
    # that ended with "free": 30, 20, 10 and 60 s; after call 6 the operator answered the next
    # call without going free, so that wrap-up is not counted (docs/statistics.md).
    assert mine.days == [(dt.date(2026, 3, 10), 6, 1015 + 300, 4, 120)]
    assert mine.wrap_up_s_avg == 30.0


def test_staff_stats_are_purged_after_the_retention_period(rt: Runtime, day: Day) -> None:
    with rt.db.session(AccessContext.system("retention")) as s:
        now = at(10, 12, 0) + dt.timedelta(days=90)
        assert stats.purge_staff_stats(s, 90, now=now) == 0
        assert stats.purge_staff_stats(s, 90, now=now + dt.timedelta(days=1)) == 1
    with rt.db.session(AccessContext.system("test"), readonly=True) as s:
        left = s.scalars(select(OperatorDailyStats.day)).all()
    assert dt.date(2026, 3, 10) not in left
    assert dt.date(2026, 3, 11) in left


def test_live_board_counts_waiting_calls_and_the_last_hour(rt: Runtime, day: Day) -> None:
    now = at(10, 14, 40)
    _open(rt, PLUMBER_DID, now - dt.timedelta(seconds=42))
    _open(rt, PLUMBER_DID, now - dt.timedelta(hours=3))  # stale: lost its status callback
    with rt.db.session(AccessContext(Role.SUPERVISOR, "test", uuid.uuid4()), readonly=True) as s:
        board = stats.board(s, now=now)
    plumber = next(a for a in board.accounts if a.account_id == day.plumber)
    assert plumber.waiting == [42]
    # In the hour before 14:40: the voicemails at 14:00 and 14:30 were missed.
    assert (plumber.answered_last_hour, plumber.missed_last_hour) == (0, 2)
    assert board.as_dict()["waiting"] == 1


@pytest.mark.parametrize("role", [Role.CLIENT, Role.DPO, Role.ADMIN])
def test_only_the_operator_and_supervisors_see_operator_stats(
    rt: Runtime, day: Day, role: Role
) -> None:
    from permanence.errors import PermissionDenied

    ctx = AccessContext(role, "test", uuid.uuid4(), day.plumber if role == Role.CLIENT else None)
    with rt.db.session(ctx, readonly=True) as s, pytest.raises(PermissionDenied):
        stats.operator_statistics(s, OPERATOR_ID, TUESDAY)


def test_outputs_hold_no_personal_data(rt: Runtime, day: Day) -> None:
    from permanence.stats import charts

    st = _account_stats(rt, day.plumber, Period(dt.date(2026, 3, 1), dt.date(2026, 3, 31)))
    ctx = AccessContext(Role.SUPERVISOR, "test", uuid.uuid4(), day.plumber)
    with rt.db.session(ctx, readonly=True) as s:
        u = usage.usage_report(s, day.plumber, "2026-03")
    outputs = [
        draw(st, lang).decode() for draw in charts.CHARTS.values() for lang in charts.LANGUAGES
    ]
    outputs += [usage.to_csv(u), str(st.as_dict())]
    for text in outputs:
        for value in PERSONAL:
            assert value not in text
    # The message text really is in the database (sealed), so the check could have failed.
    with rt.db.session(ctx_for(day.plumber), readonly=True) as s:
        assert s.scalars(select(Message.id)).first() is not None
        assert s.scalars(select(Appointment.id)).first() is not None


def test_the_retention_sweep_purges_staff_stats_whatever_the_mandates(
    rt: Runtime, day: Day
) -> None:
    from permanence.filestore import LocalStore
    from permanence.retention.service import sweep

    store = LocalStore(rt.settings.recordings_dir)
    later = at(10, 12, 0) + dt.timedelta(days=30)
    kept = sweep(rt.db, store, now=later, kinds=["staff_stats"], staff_stats_days=30)
    assert kept.staff_stats == 0
    nxt = later + dt.timedelta(days=1)
    due = sweep(rt.db, store, now=nxt, kinds=["staff_stats"], staff_stats_days=30, dry_run=True)
    assert due.staff_stats == 1
    gone = sweep(rt.db, store, now=nxt, kinds=["staff_stats"], staff_stats_days=30)
    assert gone.staff_stats == 1
    assert "staff statistics (operator-days): 1 deleted" in gone.lines()
