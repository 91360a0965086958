"""The unit of work's access context, the one every tenant check reads: the context a session
was opened with, the account it is switched to, and, on PostgreSQL, the row-level-security
setting that follows it (``app.account_id``, set per transaction: docs/adr/0003).

``tests/integration/test_tenancy.py`` proves the policies themselves with raw SQL; here the
helpers of ``permanence.db`` that set them are driven directly. On SQLite the context half
runs; the setting half needs PostgreSQL (PERMANENCE_TEST_DATABASE_URL).
"""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from permanence.context import AccessContext, Role
from permanence.db import acting_for, ctx_of, switch_account
from permanence.runtime import Runtime
from permanence.subjects.model import Caller
from tests.conftest import PG_URL
from tests.factories import OPERATOR_ID, ctx_for, make_account, make_caller

pg_only = pytest.mark.skipif(not PG_URL, reason="row-level security is PostgreSQL's")


def _two_accounts(rt: Runtime) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]:
    """Two accounts with one caller each: (account a, its caller, account b, its caller)."""
    a = make_account(rt, "cabinet-lefevre", with_mandate=False).id
    b = make_account(rt, "plomberie-durand", with_mandate=False).id
    return a, make_caller(rt, a), b, make_caller(rt, b, phone="06 11 22 33 44", email=None)


def _setting(s: Session) -> str:
    return str(s.scalar(text("SELECT current_setting('app.account_id', true)")))


def _callers(s: Session) -> set[uuid.UUID]:
    return set(s.scalars(select(Caller.id)))


def test_a_session_carries_the_context_it_was_opened_with(rt: Runtime) -> None:
    ctx = AccessContext(role=Role.SUPERVISOR, reason="r", actor_id=OPERATOR_ID)
    mirror = object()
    rt.db.erasure_mirror = mirror
    for readonly in (False, True):
        with rt.db.session(ctx, readonly=readonly) as s:
            assert ctx_of(s) is ctx
            assert s.info["erasure_mirror"] is mirror


def test_a_session_without_a_context_is_refused(rt: Runtime) -> None:
    with Session(rt.db.engine) as bare:
        with pytest.raises(RuntimeError, match="session opened without an access context"):
            ctx_of(bare)
        bare.info["ctx"] = "operator"  # anything but an AccessContext
        with pytest.raises(RuntimeError, match="session opened without an access context"):
            ctx_of(bare)


def test_the_unit_of_work_commits_at_the_end_and_rolls_back_on_error(rt: Runtime) -> None:
    a = make_account(rt, "cabinet-lefevre", with_mandate=False).id
    caller = make_caller(rt, a)  # committed by its own unit of work
    with rt.db.session(ctx_for(a), readonly=True) as s:
        assert _callers(s) == {caller}
    with pytest.raises(ZeroDivisionError), rt.db.session(ctx_for(a)) as s:
        s.execute(text("DELETE FROM callers"))
        _ = 1 / 0
    with rt.db.session(ctx_for(a), readonly=True) as s:
        assert _callers(s) == {caller}
    # The failed unit of work let go of the writers' lock: a new one opens at once.
    _within(lambda: rt.db.session(ctx_for(a)).__enter__().close())


def test_what_a_unit_of_work_read_stays_readable_after_it(rt: Runtime) -> None:
    """Objects are not expired at the commit, read-only or not: a page renders what a service
    returned after the unit of work ended (expired, they could no longer be loaded)."""
    a = make_account(rt, "cabinet-lefevre", with_mandate=False).id
    cid = make_caller(rt, a)
    for readonly in (False, True):
        with rt.db.session(ctx_for(a), readonly=readonly) as s:
            caller = s.get(Caller, cid)
        assert caller is not None and (caller.id, caller.account_id) == (cid, a)


def test_a_reader_opens_while_a_writer_is_open(rt: Runtime) -> None:
    """Readers never queue behind a writer: neither this process's lock nor, on SQLite, the
    writer's transaction (begun IMMEDIATE; a reader's is not)."""
    a = make_account(rt, "cabinet-lefevre", with_mandate=False).id
    caller = make_caller(rt, a)
    seen: list[set[uuid.UUID]] = []

    def read() -> None:
        with rt.db.session(ctx_for(a), readonly=True) as r:
            seen.append(_callers(r))

    with rt.db.session(ctx_for(a)) as w:
        w.execute(text("UPDATE callers SET created_at = created_at"))  # the writer has begun
        _within(read)
    assert seen == [{caller}]


@pytest.mark.skipif(bool(PG_URL), reason="SQLite's writers queue in the process")
def test_writers_of_one_process_queue_on_sqlite(rt: Runtime) -> None:
    """A unit of work writes unless told it only reads: on SQLite it waits for the writer
    before it (so that two never both read the audit head and then collide)."""
    a = make_account(rt, "cabinet-lefevre", with_mandate=False).id
    entered = threading.Event()

    def write() -> None:
        with rt.db.session(ctx_for(a)):  # no readonly: the default
            entered.set()

    with rt.db.session(ctx_for(a)):
        t = threading.Thread(target=write, daemon=True)
        t.start()
        assert not entered.wait(3), "a second writer did not wait for the first"
    t.join(20)
    assert entered.is_set()


def _within(work: object, seconds: float = 20.0) -> None:
    """Runs ``work`` in a thread; fails (instead of hanging) when it does not end in time."""
    assert callable(work)
    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "blocked: a lock was not released"


def test_switching_account_keeps_the_actor_and_changes_the_account(rt: Runtime) -> None:
    a, caller_a, b, caller_b = _two_accounts(rt)
    before = ctx_for(a, Role.SUPERVISOR, reason="routing")
    with rt.db.session(before) as s:
        ctx = switch_account(s, b)
        assert ctx == AccessContext(Role.SUPERVISOR, "routing", OPERATOR_ID, b)
        assert ctx_of(s) is ctx
        if PG_URL:
            assert _setting(s) == str(b)
            assert _callers(s) == {caller_b}
    assert caller_a != caller_b


def test_acting_for_an_account_returns_to_the_previous_context(rt: Runtime) -> None:
    a, caller_a, b, caller_b = _two_accounts(rt)
    before = ctx_for(a)
    with rt.db.session(before) as s:
        with acting_for(s, b) as inside:
            assert inside == before.for_account(b)
            assert ctx_of(s) is inside
            if PG_URL:
                assert _setting(s) == str(b)
                assert _callers(s) == {caller_b}
        assert ctx_of(s) is before
        if PG_URL:
            assert _setting(s) == str(a)
            assert _callers(s) == {caller_a}
        # Also when the block fails.
        with pytest.raises(KeyError), acting_for(s, b):
            raise KeyError("x")
        assert ctx_of(s) is before
        if PG_URL:
            assert _setting(s) == str(a)


def test_acting_for_from_a_provider_wide_context_returns_to_no_account(rt: Runtime) -> None:
    _, _, b, caller_b = _two_accounts(rt)
    before = AccessContext.system("compliance:check")
    with rt.db.session(before, readonly=True) as s:
        if PG_URL:
            assert _setting(s) == ""
            assert _callers(s) == set()
        with acting_for(s, b):
            if PG_URL:
                assert _callers(s) == {caller_b}
        assert ctx_of(s) is before
        if PG_URL:
            assert _setting(s) == ""
            assert _callers(s) == set()


@pg_only
def test_each_transaction_sets_the_account_of_its_context(rt: Runtime) -> None:
    a, caller_a, b, caller_b = _two_accounts(rt)
    for account, caller in ((a, caller_a), (b, caller_b)):
        for readonly in (False, True):
            with rt.db.session(ctx_for(account), readonly=readonly) as s:
                assert _setting(s) == str(account)
                assert _callers(s) == {caller}
    with rt.db.session(AccessContext(role=Role.ADMIN, reason="r")) as s:
        assert _setting(s) == ""  # no account: row-level security fails closed
        assert _callers(s) == set()
