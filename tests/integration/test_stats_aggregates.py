"""The hourly aggregates (ADR 0032) give exactly the figures a scan of the rows gives.

A generated year of one account — calls with every outcome, fractional answer times, both
summer-time changes, after-hours routings, messages, appointments, recordings — written with
bulk Core INSERTs; then the writes that change figures after the fact: a late callback
correcting an outcome, an acknowledgement, a cancellation, a retention-style DELETE, a
caller's erasure (the cascade takes their rows), an UPDATE moving calls to another hour.
After each, the figures from the aggregates equal the figures from the scan, for the year,
a month across the change to summer time, and one day.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import uuid
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, func, insert, select, text, update

from permanence import schema
from permanence.accounts.model import MandateVersion
from permanence.calls import outcome as outcomes
from permanence.calls.hours import AFTER_HOURS, IN_HOURS, OUTBOUND
from permanence.calls.model import Call
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.crypto.model import SubjectKey
from permanence.db import acting_for, ctx_of
from permanence.messages.model import Appointment, Message
from permanence.recordings.model import Recording
from permanence.runtime import Runtime
from permanence.stats import aggregates
from permanence.stats import service as stats
from permanence.stats.model import AccountAnswerSeconds, AccountHourlyStats
from permanence.subjects.model import Caller
from tests.conftest import cli_env
from tests.factories import make_account
from tests.integration.test_cli import run

YEAR = stats.Period(dt.date(2025, 1, 1), dt.date(2025, 12, 31))
MARCH = stats.Period(dt.date(2025, 3, 1), dt.date(2025, 4, 15))  # summer time from 30 March
ONE_DAY = stats.Period(dt.date(2025, 10, 26), dt.date(2025, 10, 26))  # back to winter time
PERIODS = (YEAR, MARCH, ONE_DAY)


def _year(rt: Runtime, account_id: uuid.UUID, mandate_id: uuid.UUID, n: int) -> list[uuid.UUID]:
    """n calls over 2025 (and a few days either side), bulk-inserted; returns the callers."""
    rng = random.Random(24)
    ctx = AccessContext.system("test", account_id)
    callers = [uuid.uuid4() for _ in range(40)]
    with rt.db.session(ctx) as s:
        for cid in callers:
            _c, key_row = rt.keyring.new_subject_key(s, account_id, cid)
            s.execute(insert(SubjectKey).values(**key_row))
        s.execute(insert(Caller), [{"id": c, "account_id": account_id} for c in callers])
    start = dt.datetime(2024, 12, 30, tzinfo=dt.UTC)
    calls: list[dict[str, Any]] = []
    msgs: list[dict[str, Any]] = []
    appts: list[dict[str, Any]] = []
    recs: list[dict[str, Any]] = []
    # the hours around both changes of time, always
    pinned = [
        dt.datetime(2025, 3, 30, 0, 30, tzinfo=dt.UTC),
        dt.datetime(2025, 3, 30, 1, 30, tzinfo=dt.UTC),
        dt.datetime(2025, 10, 26, 0, 30, tzinfo=dt.UTC),
        dt.datetime(2025, 10, 26, 1, 30, tzinfo=dt.UTC),
        dt.datetime(2024, 12, 31, 23, 30, tzinfo=dt.UTC),  # 1 January in Paris
    ]
    for i in range(n):
        if i < len(pinned):
            started = pinned[i]
        else:
            started = start + dt.timedelta(seconds=rng.randrange(368 * 86400))
        started += dt.timedelta(microseconds=rng.randrange(1_000_000))
        caller = callers[i % len(callers)]
        row: dict[str, Any] = {
            "id": uuid.uuid4(),
            "account_id": account_id,
            "caller_id": caller,
            "mandate_id": mandate_id,
            "started_at": started,
            "status": "completed",
            "routing": rng.choice((None, IN_HOURS, OUTBOUND, *AFTER_HOURS)),
        }
        r = rng.random()
        if r < 0.6:
            # fractional answer times, the histogram's edges and the half seconds included
            wait = rng.choice((10, 20, 30, 60, 4.5, 12.5)) if rng.random() < 0.2 else None
            answer = dt.timedelta(seconds=wait or rng.uniform(1, 95))
            talk = rng.randint(20, 900)
            row |= {
                "answered_at": started + answer,
                "ended_at": started + answer + dt.timedelta(seconds=talk, milliseconds=250),
                "talk_s": talk if rng.random() < 0.5 else None,
                "outcome": outcomes.ANSWERED,
            }
            when = started + answer
            if rng.random() < 0.4:
                msgs.append(
                    {
                        "account_id": account_id,
                        "caller_id": caller,
                        "call_id": row["id"],
                        "mandate_id": mandate_id,
                        "purpose": "intervention",
                        "payload_sealed": b"\x00" * 8,
                        "created_at": when,
                        "acknowledged_at": when if rng.random() < 0.7 else None,
                    }
                )
            elif rng.random() < 0.3:
                appts.append(
                    {
                        "account_id": account_id,
                        "caller_id": caller,
                        "call_id": row["id"],
                        "mandate_id": mandate_id,
                        "purpose": "appointment",
                        "starts_at": when + dt.timedelta(days=2),
                        "ends_at": when + dt.timedelta(days=2, minutes=30),
                        "payload_sealed": b"\x00" * 8,
                        "created_at": when,
                        "status": "cancelled" if rng.random() < 0.2 else "booked",
                    }
                )
        elif r < 0.72:
            ended = (
                None if rng.random() < 0.1 else started + dt.timedelta(seconds=rng.uniform(1, 99))
            )
            row |= {"ended_at": ended, "outcome": outcomes.ABANDONED}
        elif r < 0.84:
            ended = started + dt.timedelta(seconds=75)
            row |= {"ended_at": ended, "voicemail": True, "outcome": outcomes.VOICEMAIL}
            recs.append(
                {
                    "account_id": account_id,
                    "call_id": row["id"],
                    "caller_id": caller,
                    "mandate_id": mandate_id,
                    "kind": "voicemail",
                    "provider_sid": f"RE{i}",
                    "storage_key": "test",
                    "duration_s": rng.randint(3, 60),
                    "created_at": ended + dt.timedelta(seconds=rng.randint(0, 4000)),
                }
            )
        elif r < 0.9:
            row |= {"status": "busy", "ended_at": started, "outcome": outcomes.FAILED}
        elif r < 0.93:
            row |= {"status": "expired", "outcome": outcomes.EXPIRED}
        elif r < 0.96:
            row |= {"outcome": outcomes.TRANSFERRED, "ended_at": started}
        else:
            row |= {"status": "ringing"}  # still going on
        calls.append(row)
    with rt.db.session(ctx) as s:
        s.execute(insert(Call), calls)
        s.execute(insert(Message), msgs)
        s.execute(insert(Appointment), appts)
        s.execute(insert(Recording), recs)
    return callers


def _both(rt: Runtime, account_id: uuid.UUID, period: stats.Period) -> tuple[Any, Any]:
    ctx = AccessContext(Role.SUPERVISOR, "test", uuid.uuid4(), account_id)
    with rt.db.session(ctx, readonly=True) as s:
        kept = stats.account_statistics(s, account_id, period)
        scanned = stats.scan_account_statistics(s, account_id, period)
    return kept, scanned


def _assert_equal(rt: Runtime, account_id: uuid.UUID) -> None:
    for period in PERIODS:
        kept, scanned = _both(rt, account_id, period)
        assert kept.as_dict() == scanned.as_dict(), period
        # the unrounded sums too (the API rounds them to 0.1)
        for name in ("answer_s_avg", "talk_s_avg", "abandon_after_s_avg", "answer_s_p90"):
            assert getattr(kept, name) == pytest.approx(getattr(scanned, name), abs=1e-6), name


@pytest.fixture
def year(rt: Runtime) -> tuple[uuid.UUID, list[uuid.UUID]]:
    account = make_account(rt, "plomberie-durand")
    with rt.db.session(AccessContext.system("test", account.id)) as s:
        mandate_id = s.scalar(
            select(MandateVersion.id).where(MandateVersion.account_id == account.id).limit(1)
        )
    assert mandate_id is not None
    return account.id, _year(rt, account.id, mandate_id, 1500)


def test_the_aggregates_equal_the_scan_on_a_generated_year(
    rt: Runtime, year: tuple[uuid.UUID, list[uuid.UUID]]
) -> None:
    account_id, _callers = year
    _kept, scanned = _both(rt, account_id, YEAR)
    assert scanned.calls.received > 1300 and scanned.messages_taken > 100  # a real year
    assert scanned.recordings > 50 and scanned.appointments_cancelled > 0
    assert scanned.after_hours_total > 0 and scanned.in_progress > 0 and scanned.outbound > 0
    _assert_equal(rt, account_id)
    # and rebuilding from the rows gives the very same rows
    ctx = AccessContext.system("test", account_id)
    with rt.db.session(ctx) as s:
        before = s.execute(select(AccountHourlyStats).order_by(AccountHourlyStats.hour)).all()
        seconds = s.execute(select(func.sum(AccountAnswerSeconds.calls))).scalar()
        aggregates.rebuild(s, account_id)
    with rt.db.session(ctx) as s:
        after = s.execute(select(AccountHourlyStats).order_by(AccountHourlyStats.hour)).all()
        assert [_cols(r[0]) for r in after] == [_cols(r[0]) for r in before]
        assert s.execute(select(func.sum(AccountAnswerSeconds.calls))).scalar() == seconds


def _cols(row: AccountHourlyStats) -> dict[str, Any]:
    return {
        c: round(v, 6) if isinstance(v, float) else v for c, v in vars(row).items() if c[0] != "_"
    }


def test_later_writes_keep_them_equal(rt: Runtime, year: tuple[uuid.UUID, list[uuid.UUID]]) -> None:
    account_id, callers = year
    ctx = AccessContext.system("test", account_id)
    with rt.db.session(ctx) as s:
        # a late callback: a call thought abandoned was answered (ORM, one object)
        call = s.scalars(
            select(Call).where(Call.outcome == outcomes.ABANDONED).order_by(Call.started_at)
        ).first()
        assert call is not None
        call.answered_at = call.started_at + dt.timedelta(seconds=33.4)
        outcomes.settle(call)
        # acknowledgements and a cancellation
        for msg in s.scalars(select(Message).where(Message.acknowledged_at.is_(None)).limit(5)):
            msg.acknowledged_at = msg.created_at + dt.timedelta(hours=1)
        appt = s.scalars(select(Appointment).where(Appointment.status == "booked")).first()
        assert appt is not None
        appt.status = "cancelled"
        # new rows through the ORM: added to their hours without recounting them
        for k in range(3):
            s.add(
                Message(
                    account_id=account_id,
                    caller_id=callers[k],
                    mandate_id=appt.mandate_id,
                    purpose="intervention",
                    payload_sealed=b"\x00",
                    created_at=dt.datetime(2025, 5, 5, 9, 10 * k, tzinfo=dt.UTC),
                    acknowledged_at=None if k else dt.datetime(2025, 5, 6, tzinfo=dt.UTC),
                )
            )
        s.add(
            Recording(
                account_id=account_id,
                call_id=call.id,
                caller_id=call.caller_id,
                mandate_id=call.mandate_id,
                kind="call",
                provider_sid="RE-late",
                storage_key="test",
                duration_s=41,
                created_at=dt.datetime(2025, 5, 5, 9, 30, tzinfo=dt.UTC),
            )
        )
    _assert_equal(rt, account_id)
    with rt.db.session(ctx) as s:
        # a retention sweep's DELETE of January's calls (their recordings go by cascade)
        s.execute(delete(Call).where(Call.started_at < dt.datetime(2025, 2, 1, tzinfo=dt.UTC)))
        # UPDATEs moving calls by 90 minutes (another hour, sometimes another day)
        moved = s.execute(
            select(Call.id, Call.started_at).where(Call.caller_id == callers[1]).limit(8)
        ).all()
        for call_id, started in moved:
            s.execute(
                update(Call)
                .where(Call.id == call_id)
                .values(started_at=started + dt.timedelta(minutes=90))
            )
        # a message deleted through the ORM
        msg = s.scalars(select(Message).order_by(Message.created_at.desc())).first()
        assert msg is not None
        s.delete(msg)
    _assert_equal(rt, account_id)
    with rt.db.session(ctx) as s:
        # an erasure: the caller row goes, and with it (cascade) their calls, messages,
        # appointments and recordings
        s.execute(delete(Caller).where(Caller.id == callers[2]))
        left = s.scalar(select(func.count()).select_from(Call).where(Call.caller_id == callers[2]))
        assert left == 0
    _assert_equal(rt, account_id)


def test_a_rolled_back_write_leaves_them_as_they_were(
    rt: Runtime, year: tuple[uuid.UUID, list[uuid.UUID]]
) -> None:
    account_id, _callers = year
    before, _ = _both(rt, account_id, YEAR)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), rt.db.session(AccessContext.system("test", account_id)) as s:
        s.execute(delete(Call).where(Call.outcome == outcomes.ANSWERED))
        aggregates.apply_pending(s)  # written in the transaction, then rolled back with it
        raise Boom
    after, scanned = _both(rt, account_id, YEAR)
    assert after.as_dict() == before.as_dict() == scanned.as_dict()


def test_rows_written_behind_the_sessions_back_are_recounted_by_the_rebuild_command(
    rt: Runtime, settings: Settings, year: tuple[uuid.UUID, list[uuid.UUID]]
) -> None:
    account_id, _callers = year
    # a raw DELETE on a connection of its own: no session sees it, the aggregates go stale
    with rt.db.engine.begin() as conn:
        if rt.db.is_postgres:
            conn.execute(
                text("SELECT set_config('app.account_id', :a, true)"), {"a": str(account_id)}
            )
        conn.execute(delete(Call).where(Call.started_at >= dt.datetime(2025, 12, 1, tzinfo=dt.UTC)))
    kept, scanned = _both(rt, account_id, YEAR)
    assert kept.calls.received > scanned.calls.received
    out = run(cli_env(settings), "stats", "rebuild", "--account", "plomberie-durand")
    assert "statistics rebuilt: 1 accounts" in out.stdout
    _assert_equal(rt, account_id)


def test_the_migration_fills_them_from_the_rows_already_there(
    rt: Runtime, settings: Settings
) -> None:
    account = make_account(rt, "plomberie-durand")
    with rt.db.session(AccessContext.system("test", account.id)) as s:
        mandate_id = s.scalar(
            select(MandateVersion.id).where(MandateVersion.account_id == account.id).limit(1)
        )
    assert mandate_id is not None
    _year(rt, account.id, mandate_id, 300)
    url = settings.effective_migration_url
    cfg = schema.alembic_config(url)
    try:
        command.downgrade(cfg, "0089-1")  # the tables go, the rows stay
    finally:
        rt.db.engine.dispose()
        schema.upgrade(url, settings.database_app_role)  # 0089 again: created and filled
    _kept, scanned = _both(rt, account.id, YEAR)
    assert scanned.calls.received > 250
    _assert_equal(rt, account.id)


def test_rows_written_inside_acting_for_are_recounted_under_that_account(
    rt: Runtime, year: tuple[uuid.UUID, list[uuid.UUID]]
) -> None:
    """A provider-wide transaction (no account) writes an account's calls inside acting_for
    and commits after the block: the recount runs under that account's row-level security
    (PostgreSQL), not the transaction's."""
    account_id, _callers = year
    with rt.db.session(AccessContext.system("test")) as s:
        with acting_for(s, account_id):
            s.execute(
                update(Call)
                .where(Call.account_id == account_id, Call.outcome == outcomes.EXPIRED)
                .values(outcome=outcomes.ABANDONED)
            )
        assert ctx_of(s).account_id is None
    kept, _scanned = _both(rt, account_id, YEAR)
    assert kept.calls.expired == 0
    _assert_equal(rt, account_id)


@pytest.mark.skipif(
    not os.environ.get("PERMANENCE_TEST_DATABASE_URL"),
    reason="two writers at once: PostgreSQL (SQLite has one writer)",
)
def test_two_transactions_recounting_one_hour_at_once_keep_both_calls(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADR 0035: the audit head is taken at commit before the hour rows, so two transactions
    never recount the same hour at once (each would miss the other's uncommitted call, and
    the second upsert would overwrite the first). The first waits in its recount for the
    second to start its own; with the head first, the second cannot (it waits for the head),
    and both calls are counted."""
    import threading
    import time

    from permanence.audit import service as audit

    account = make_account(rt, "plomberie-durand")
    with rt.db.session(AccessContext.system("test", account.id)) as s:
        mandate_id = s.scalar(
            select(MandateVersion.id).where(MandateVersion.account_id == account.id).limit(1)
        )
    hour = dt.datetime(2025, 6, 2, 9, tzinfo=dt.UTC)
    real = aggregates.apply_pending
    first_recounting, second_recounting = threading.Event(), threading.Event()
    waited: list[bool] = []

    def apply_pending(session: Any, *args: Any, **kw: Any) -> None:
        name = threading.current_thread().name
        if name == "second":
            second_recounting.set()
        elif name == "first":
            first_recounting.set()
        real(session, *args, **kw)
        if name == "first":
            # the second, recounting from its own snapshot now, would miss this call
            waited.append(second_recounting.wait(2))
            time.sleep(0.3)

    monkeypatch.setattr(aggregates, "apply_pending", apply_pending)
    errors: list[BaseException] = []

    def write(minute: int) -> None:
        try:
            if threading.current_thread().name == "second":
                assert first_recounting.wait(20)
            with rt.db.session(AccessContext.system("test", account.id)) as s:
                call_id = uuid.uuid4()
                s.execute(
                    insert(Call).values(
                        id=call_id,
                        account_id=account.id,
                        mandate_id=mandate_id,
                        started_at=hour + dt.timedelta(minutes=minute),
                        status="completed",
                        outcome=outcomes.VOICEMAIL,
                    )
                )
                audit.record(s, "call.create", "call", call_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(5,), name="first"),
        threading.Thread(target=write, args=(10,), name="second"),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert waited == [False]  # the second did not recount while the first held the hour
    with rt.db.session(AccessContext.system("test", account.id), readonly=True) as s:
        received = s.scalar(
            select(AccountHourlyStats.received).where(
                AccountHourlyStats.account_id == account.id, AccountHourlyStats.hour == hour
            )
        )
    assert received == 2
    _assert_equal(rt, account.id)


def test_messages_taken_through_the_service_are_counted_in_their_hour(rt: Runtime) -> None:
    """``take_message`` writes its row with a Core INSERT (ADR 0040), which the flush events
    do not see: the row is noted (``db.note_core_insert``) and added to its hour at commit; a
    rolled-back message is not counted; the message stays an object of its session."""
    from permanence.messages import service as messages
    from tests.factories import ctx_for, make_caller

    account = make_account(rt, "plomberie-durand")
    caller = make_caller(rt, account.id)
    values = {
        "last_name": "Martin",
        "phone": "01 99 00 12 34",
        "address": "3 rue des Lilas, 44000 Nantes",
        "urgency": "à planifier",
        "description": "Fuite sous l'évier",
    }
    today = dt.datetime.now(dt.UTC).date()
    around = stats.Period(today - dt.timedelta(days=1), today + dt.timedelta(days=1))

    def taken() -> tuple[int, int]:
        kept, scanned = _both(rt, account.id, around)
        assert kept.as_dict() == scanned.as_dict()
        with rt.db.session(AccessContext.system("test", account.id), readonly=True) as s:
            hourly = s.scalar(select(func.sum(AccountHourlyStats.messages)))
        return kept.messages_taken, int(hourly or 0)

    with rt.db.session(ctx_for(account.id)) as s:
        first = messages.take_message(
            s, rt.keyring, caller_id=caller, purpose="intervention", values=values
        )
        second = messages.take_message(
            s, rt.keyring, caller_id=caller, purpose="intervention", values=values
        )
        assert first in s and not s.new and not s.dirty  # persistent, nothing left to flush
        second.urgent = True  # a change after taking it is written as usual
    assert taken() == (2, 2)
    with rt.db.session(ctx_for(account.id), readonly=True) as s:
        assert s.get(Message, second.id).urgent is True  # type: ignore[union-attr]
        assert s.get(Message, first.id).status == "new"  # type: ignore[union-attr]

    class Boom(Exception):
        pass

    with pytest.raises(Boom), rt.db.session(ctx_for(account.id)) as s:
        messages.take_message(
            s, rt.keyring, caller_id=caller, purpose="intervention", values=values
        )
        raise Boom
    assert taken() == (2, 2)
    with rt.db.session(ctx_for(account.id)) as s:
        messages.take_message(
            s, rt.keyring, caller_id=caller, purpose="intervention", values=values
        )
    assert taken() == (3, 3)
