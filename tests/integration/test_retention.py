"""Retention sweep: deletes exactly what is due and not held; batched, idempotent, counts only."""

from __future__ import annotations

import datetime as dt
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select

from permanence.accounts.service import mandate_version
from permanence.calls.model import Call
from permanence.context import AccessContext, Role
from permanence.errors import PermissionDenied
from permanence.filestore import LocalStore, storage_key
from permanence.mandates.base import RetentionKind
from permanence.mandates.mandate import Mandate
from permanence.messages.model import Message
from permanence.recordings.model import Recording
from permanence.retention import service as retention
from permanence.retention.model import LegalHold
from permanence.runtime import Runtime
from tests.conftest import cli_env
from tests.factories import ctx_for, make_account, make_caller

NOW = dt.datetime(2027, 1, 15, 10, tzinfo=dt.UTC)
DPO = Role.DPO


class World:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.account = make_account(rt, "plomberie-durand")
        self.callers = [
            make_caller(rt, self.account.id, first=f"P{i}", phone=f"06 39 98 12 3{i}")
            for i in range(3)
        ]
        with rt.db.session(ctx_for(self.account.id)) as s:
            row, self.mandate = mandate_version(s, self.account.id)
            self.mandate_id = row.id
        self.store = LocalStore(rt.settings.recordings_dir)
        self.carriers: set[uuid.UUID] = set()  # recent calls that only carry a recording

    def ctx(self, role: Role = Role.SUPERVISOR) -> AccessContext:
        return ctx_for(self.account.id, role)

    def add(
        self, kind: str, age: dt.timedelta, caller: int, purpose: str = "intervention"
    ) -> uuid.UUID:
        rid = uuid.uuid4()
        at = NOW - age
        base = {
            "id": rid,
            "account_id": self.account.id,
            "caller_id": self.callers[caller],
            "mandate_id": self.mandate_id,
        }
        with self.rt.db.session(self.ctx()) as s:
            if kind == "messages":
                s.execute(
                    insert(Message).values(
                        **base, purpose=purpose, payload_sealed=b"x", created_at=at
                    )
                )
            elif kind == "calls":
                s.execute(insert(Call).values(**base, started_at=at))
            else:
                call_id = uuid.uuid4()
                self.carriers.add(call_id)
                s.execute(
                    insert(Call).values(
                        **{**base, "id": call_id}, started_at=NOW, recording_state="stored"
                    )
                )
                key = storage_key(self.account.id, rid)
                s.execute(
                    insert(Recording).values(
                        **base,
                        call_id=call_id,
                        provider_sid=f"RE{rid.hex}",
                        storage_key=key,
                        created_at=at,
                    )
                )
                self.store.put(key, lambda fh: fh.write(b"ciphertext"))
        return rid

    def period_ends(self, kind: str, purpose: str, at: dt.datetime) -> dt.datetime:
        m: Mandate = self.mandate
        if kind == "messages":
            p = m.retention(RetentionKind.MESSAGE, purpose)
        elif kind == "calls":
            p = m.retention(RetentionKind.CALL_LOG)
        else:
            p = m.retention(RetentionKind.RECORDING)
        return p.add_to(at) if p is not None else at

    def remaining(self) -> set[uuid.UUID]:
        with self.rt.db.session(self.ctx()) as s:
            ids = set(s.scalars(select(Message.id)))
            ids |= set(s.scalars(select(Recording.id)))
            ids |= set(s.scalars(select(Call.id)))
            return ids - self.carriers

    def hold(self, **kw: object) -> uuid.UUID:
        with self.rt.db.session(self.ctx(DPO)) as s:
            return retention.place_hold(s, reason="litigation", **kw).id  # type: ignore[arg-type]

    def clear(self) -> None:
        with self.rt.db.session(self.ctx()) as s:
            for model in (LegalHold, Recording, Message, Call):
                s.execute(delete(model))
        self.carriers.clear()


@pytest.fixture
def world(rt: Runtime) -> Iterator[World]:
    yield World(rt)


@pytest.mark.gdpr("Art. 5(1)(e)")
def test_due_records_are_deleted_and_others_kept(world: World) -> None:
    old = world.add("messages", dt.timedelta(days=200), 0)  # P6M: due
    young = world.add("messages", dt.timedelta(days=150), 0)  # not yet
    undeclared = world.add("messages", dt.timedelta(hours=1), 0, purpose="appointment")
    rec = world.add("recordings", dt.timedelta(days=190), 1)  # P6M: due
    old_call = world.add("calls", dt.timedelta(days=400), 2)  # P1Y: due
    report = retention.sweep(world.rt.db, world.store, now=NOW)
    assert world.remaining() == {young}
    assert {old, undeclared, rec, old_call}.isdisjoint(world.remaining())
    assert report.counts == {
        ("plomberie-durand", "messages"): 2,  # the old one and the undeclared purpose's
        ("plomberie-durand", "recordings"): 1,
        # The old call only: the recording's call started now, it is kept under P1Y.
        ("plomberie-durand", "calls"): 1,
    }
    assert not any(world.rt.settings.recordings_dir.rglob("*.pmr"))
    again = retention.sweep(world.rt.db, world.store, now=NOW)
    assert again.total == 0  # idempotent


def test_a_call_whose_recording_retention_deleted_says_so(world: World) -> None:
    world.add("recordings", dt.timedelta(days=190), 1)  # P6M: due
    kept = world.add("recordings", dt.timedelta(days=10), 1)
    retention.sweep(world.rt.db, world.store, now=NOW)
    with world.rt.db.session(world.ctx()) as s:
        states = {
            c.id: c.recording_state for c in s.scalars(select(Call)) if c.id in world.carriers
        }
        kept_call = s.scalars(select(Recording.call_id).where(Recording.id == kept)).one()
    assert states.pop(kept_call) == "stored"
    assert list(states.values()) == ["deleted"]


def test_dry_run_counts_and_deletes_nothing(world: World) -> None:
    world.add("messages", dt.timedelta(days=200), 0)
    before = world.remaining()
    report = retention.sweep(world.rt.db, world.store, now=NOW, dry_run=True)
    assert report.counts == {("plomberie-durand", "messages"): 1}
    assert report.lines()[-1] == "total: 1 due"
    assert world.remaining() == before


def test_holds_pause_retention_until_released(world: World) -> None:
    held_msg = world.add("messages", dt.timedelta(days=200), 0)
    held_callers_msg = world.add("messages", dt.timedelta(days=200), 1)
    free = world.add("messages", dt.timedelta(days=200), 2)
    world.hold(record_kind="messages", record_id=held_msg)
    caller_hold = world.hold(caller_id=world.callers[1])
    retention.sweep(world.rt.db, world.store, now=NOW)
    assert world.remaining() == {held_msg, held_callers_msg}
    assert free not in world.remaining()
    with world.rt.db.session(world.ctx(DPO)) as s:
        retention.release_hold(s, caller_hold)
    retention.sweep(world.rt.db, world.store, now=NOW)
    assert world.remaining() == {held_msg}


def test_account_hold_stops_everything(world: World) -> None:
    world.add("messages", dt.timedelta(days=400), 0)
    world.hold()
    report = retention.sweep(world.rt.db, world.store, now=NOW)
    assert report.total == 0 and report.held_accounts == ["plomberie-durand"]
    assert "plomberie-durand: under legal hold, nothing deleted" in report.lines()


def test_operators_cannot_place_holds(world: World) -> None:
    with pytest.raises(PermissionDenied), world.rt.db.session(world.ctx(Role.OPERATOR)) as s:
        retention.place_hold(s, reason="litigation")


def test_sweep_works_in_batches(world: World) -> None:
    for _ in range(7):
        world.add("messages", dt.timedelta(days=200), 0)
    report = retention.sweep(world.rt.db, world.store, now=NOW, batch=3)
    assert report.counts == {("plomberie-durand", "messages"): 7}


record = st.tuples(
    st.sampled_from(["messages", "calls", "recordings"]),
    st.sampled_from(["intervention", "appointment"]),
    st.integers(0, 800),  # age in days
    st.integers(0, 2),  # caller
    st.booleans(),  # record hold
)


@pytest.mark.gdpr("Art. 5(1)(e)")
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(record, max_size=12), st.one_of(st.none(), st.integers(0, 2)))
def test_sweep_deletes_every_due_record_and_nothing_else(
    world: World, records: list[tuple[str, str, int, int, bool]], held_caller: int | None
) -> None:
    world.clear()
    expected_kept: set[uuid.UUID] = set()
    for kind, purpose, days, caller, held in records:
        purpose = purpose if kind == "messages" else "intervention"
        age = dt.timedelta(days=days, hours=days % 24)
        rid = world.add(kind, age, caller, purpose)
        if held:
            world.hold(record_kind=kind, record_id=rid)
        due = world.period_ends(kind, purpose, NOW - age) <= NOW
        if not due or held or caller == held_caller:
            expected_kept.add(rid)
    if held_caller is not None:
        world.hold(caller_id=world.callers[held_caller])
    retention.sweep(world.rt.db, world.store, now=NOW, batch=4)
    assert world.remaining() == expected_kept


def test_retention_run_command_prints_counts_per_kind_and_account(
    rt: Runtime, world: World
) -> None:
    world.add("messages", dt.timedelta(days=3000), 0)
    out = subprocess.run(
        [".venv/bin/permanence", "retention", "run", "--dry-run"],
        env=cli_env(rt.settings),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "plomberie-durand messages: 1 due" in out
    out = subprocess.run(
        [".venv/bin/permanence", "retention", "run"],
        env=cli_env(rt.settings),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "plomberie-durand messages: 1 deleted" in out
    assert "Martin" not in out and "06 39" not in out
