"""The delivery worker: sends what is due, retries with back-off, advances escalations.

One pass (``run_due``) walks the active accounts; for each, under that account's context
(row-level security on PostgreSQL), it advances the due escalation clocks, then claims due
deliveries in batches. Claiming takes a lease (the row's next attempt is pushed forward and
its attempt counted) in a short transaction — ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several workers share the load; SQLite serialises write transactions anyway — then sends
outside any transaction and records each outcome in another.

The claim's commit is the record of the attempt, made before anything is sent. Recording the
outcome is retried while the database is briefly unreachable (a connection reset, a
restart); if it stays unreachable, the outcomes wait in the worker's memory (``Backlog``) and
the next pass records them before it claims anything, so a database blip never makes the
worker send again what it sent. Only a worker that dies between the send and the record
leaves rows that fall due again when the lease ends: delivery is at least once, and every
mail and webhook carries its delivery's id (``X-Permanence-Delivery``, and a stable
``Message-ID``) so that receivers can drop the copy.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence import infra
from permanence.accounts.model import Account, AccountStatus
from permanence.accounts.service import get_account
from permanence.audit import service as audit
from permanence.context import AccessContext
from permanence.db import ctx_of, utcnow
from permanence.delivery.escalation import escalate_due
from permanence.delivery.model import ARRIVALS, Channel, Delivery, Status
from permanence.delivery.ports import (
    SendFailed,
)

# Channels: re-exported, the callers and tests that run a pass hand it in from here.
from permanence.delivery.sending import Channels as Channels
from permanence.delivery.sending import Job, Prepared, prepare, prepare_own, send
from permanence.delivery.service import is_restricted, retry_delay, transition
from permanence.delivery.targets import target_of
from permanence.runtime import Runtime

log = logging.getLogger("permanence.delivery")

REASON = "delivery:worker"
# How long a claimed delivery is reserved for the worker that claimed it.
LEASE = dt.timedelta(minutes=10)
BATCH = 50
# Waits between tries of recording outcomes (about 15 s in all, far below the lease).
RECORD_RETRIES: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


# A 2xx from these means the recipient's own system has it.
_HTTP_CHANNELS = frozenset({Channel.WEBHOOK, Channel.OPENDSR_CALLBACK})


@dataclass
class _Outcome:
    account_id: uuid.UUID
    job: Job
    failure: SendFailed | None
    at: dt.datetime


@dataclass
class Backlog:
    """Outcomes of attempts made but not yet recorded (the database was unreachable). Kept by
    the worker loop from one pass to the next; recorded first thing in the next pass."""

    outcomes: list[_Outcome] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.outcomes)


class OutcomesNotRecorded(Exception):
    """Sent, but the outcome could not be written: kept in the backlog (if any)."""

    def __init__(self, count: int, cause: BaseException) -> None:
        super().__init__(f"{count} outcome(s) not recorded: {infra.describe(cause)}")
        self.count = count
        self.cause = cause


def run_due(
    rt: Runtime,
    now: dt.datetime | None = None,
    limit: int = 500,
    channels: Channels | None = None,
    rng: random.Random | None = None,
    backlog: Backlog | None = None,
    retries: Sequence[float] = RECORD_RETRIES,
) -> dict[str, int]:
    """One pass over every active account; at most ``limit`` deliveries attempted per account.

    Returns counts: ``escalated`` (alerts created), ``sent``, ``delivered``, ``retrying``,
    ``failed``, ``cancelled``. Outcomes that cannot be recorded after ``retries`` go to
    ``backlog`` and the pass stops with ``OutcomesNotRecorded``; a later pass given the same
    backlog records them before anything else.
    """
    now = now or utcnow()
    channels = channels or Channels.from_settings(rt.settings)
    counts: Counter[str] = Counter()
    backlog = backlog if backlog is not None else Backlog()
    if backlog.outcomes:
        waiting, backlog.outcomes = backlog.outcomes, []
        _record_all(rt, waiting, rng, counts, backlog, retries)
    with rt.db.session(AccessContext.system(REASON), readonly=True) as s:
        accounts = s.scalars(
            select(Account.id).where(Account.status == AccountStatus.ACTIVE).order_by(Account.id)
        ).all()
    for account_id in accounts:
        ctx = AccessContext.system(REASON, account_id)
        with rt.db.session(ctx) as s:
            counts["escalated"] += len(escalate_due(s, now, limit))
        attempted = 0
        while attempted < limit:
            with rt.db.session(ctx) as s:
                jobs = _claim(s, rt, now, min(BATCH, limit - attempted), counts)
            if not jobs:
                break
            outcomes = [_Outcome(account_id, job, send(job, channels), now) for job in jobs]
            _record_all(rt, outcomes, rng, counts, backlog, retries)
            attempted += len(jobs)
    return {
        k: counts[k] for k in ("escalated", "sent", "delivered", "retrying", "failed", "cancelled")
    }


def _record_all(
    rt: Runtime,
    outcomes: list[_Outcome],
    rng: random.Random | None,
    counts: Counter[str],
    backlog: Backlog,
    retries: Sequence[float],
) -> None:
    """Record ``outcomes`` (one transaction per account), retrying while the database is
    unreachable; what still cannot be recorded goes to ``backlog``."""
    by_account: dict[uuid.UUID, list[_Outcome]] = {}
    for o in outcomes:
        by_account.setdefault(o.account_id, []).append(o)
    for n, (account_id, group) in enumerate(by_account.items()):
        ctx = AccessContext.system(REASON, account_id)
        waits = iter(retries)
        while True:
            tried: Counter[str] = Counter()
            try:
                with rt.db.session(ctx) as s:
                    for o in group:
                        _record(s, o.job, o.failure, o.at, rng, tried)
            except Exception as exc:
                if infra.classify(exc) is None:
                    raise
                wait = next(waits, None)
                if wait is None:
                    rest = [o for _, g in list(by_account.items())[n:] for o in g]
                    backlog.outcomes.extend(rest)
                    raise OutcomesNotRecorded(len(rest), exc) from exc
                log.warning(
                    "recording %d delivery outcome(s) failed (%s); retrying in %.2g s",
                    len(group),
                    infra.describe(exc),
                    wait,
                )
                time.sleep(wait)
                continue
            counts.update(tried)
            break


def attempt_now(
    rt: Runtime,
    account_id: uuid.UUID,
    target_id: uuid.UUID,
    channels: Channels,
    now: dt.datetime | None = None,
) -> dict[str, int]:
    """Attempt at once the due deliveries of one target (``message_id``) of one account, as a
    pass would: claimed, sent, recorded; failures retried later by the worker. For a change
    whose recipients should not wait for the next pass (an OpenDSR status callback)."""
    now = now or utcnow()
    counts: Counter[str] = Counter()
    ctx = AccessContext.system(REASON, account_id)
    with rt.db.session(ctx) as s:
        jobs = _claim(s, rt, now, BATCH, counts, target_id=target_id)
    if jobs:
        outcomes = [_Outcome(account_id, job, send(job, channels), now) for job in jobs]
        _record_all(rt, outcomes, None, counts, Backlog(), RECORD_RETRIES)
    return {k: counts[k] for k in ("sent", "delivered", "retrying", "failed", "cancelled")}


def _claim(
    session: Session,
    rt: Runtime,
    now: dt.datetime,
    n: int,
    counts: Counter[str],
    target_id: uuid.UUID | None = None,
) -> list[Job]:
    where = [
        Delivery.account_id == ctx_of(session).require_account(),
        Delivery.status == Status.PENDING.value,
        Delivery.next_attempt_at <= now,
    ]
    if target_id is not None:
        where.append(Delivery.message_id == target_id)
    rows = session.scalars(
        select(Delivery)
        .where(*where)
        .order_by(Delivery.next_attempt_at, Delivery.created_at)
        .limit(n)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return []
    prepared = Prepared(get_account(session, rows[0].account_id), rt.settings.public_base_url)
    jobs: list[Job] = []
    for row in rows:
        channel = Channel(row.channel)
        if channel is Channel.OPENDSR_CALLBACK:  # about a rights request, not a message
            row.attempts += 1
            row.next_attempt_at = now + LEASE
            jobs.append(prepare_own(session, rt, prepared, row))
            continue
        msg = target_of(session, row.event, row.message_id)
        if msg is not None and row.event in ARRIVALS and is_restricted(session, msg):
            row.next_attempt_at = None  # held until the restriction is lifted (Art. 18)
            continue
        if channel is Channel.PORTAL:  # the portal has it as soon as it exists
            transition(session, row, Status.DELIVERED, now)
            continue
        if row.event in ARRIVALS and msg is None:
            transition(session, row, Status.CANCELLED, now, error="message_gone")
            counts["cancelled"] += 1
            continue
        if channel in {Channel.ESCALATION_EMAIL, Channel.ESCALATION_SMS} and (
            msg is None or msg.acknowledged_at is not None
        ):
            transition(session, row, Status.CANCELLED, now, error="acknowledged")
            counts["cancelled"] += 1
            continue
        row.attempts += 1
        row.next_attempt_at = now + LEASE
        jobs.append(prepare(session, rt, prepared, row, msg, now))
    session.flush()
    return jobs


def _record(
    session: Session,
    job: Job,
    failure: SendFailed | None,
    now: dt.datetime,
    rng: random.Random | None,
    counts: Counter[str],
) -> None:
    row = session.get(Delivery, job.delivery_id)
    if row is None:
        return
    if failure is None:
        status = Status.DELIVERED if job.channel in _HTTP_CHANNELS else Status.SENT
        if row.status not in {Status.PENDING, Status.CANCELLED} and row.attempts == job.attempt:
            return  # already recorded (a commit that went through before its answer was lost)
        # Even if it was cancelled meanwhile (acknowledged during the send), it went: the
        # ledger must say so, it is the list of who received what.
        if row.status in {Status.PENDING, Status.CANCELLED}:
            transition(session, row, status, now)
        row.last_error = None  # an earlier attempt's error no longer describes it
        counts[status.value] += 1
        log.info("delivery %s %s (%s)", row.id, status.value, row.channel)
        _audit(session, row, f"delivery.{status.value}")
        return
    if row.status != Status.PENDING or row.attempts != job.attempt:
        return  # another worker took it over after our lease ran out
    delay = retry_delay(row.attempts, rng) if failure.retry else None
    if delay is None:
        transition(session, row, Status.FAILED, now, error=failure.code)
        counts["failed"] += 1
        log.warning(
            "delivery %s failed after %d attempt(s): %s", row.id, row.attempts, failure.code
        )
        _audit(session, row, "delivery.failed", error=failure.code)
        return
    row.next_attempt_at = now + delay
    transition(session, row, Status.PENDING, now, error=failure.code)
    counts["retrying"] += 1
    log.info("delivery %s attempt %d failed (%s), retrying", row.id, row.attempts, failure.code)


def _audit(session: Session, row: Delivery, action: str, error: str | None = None) -> None:
    details: dict[str, str | int | uuid.UUID | None] = {
        "message": row.message_id,
        "channel": row.channel,
        "event": row.event,
        "attempts": row.attempts,
    }
    if error:
        details["error"] = error
    audit.record(session, action, "delivery", row.id, subject_id=row.subject_id, details=details)


# A housekeeping pass the loop runs after each delivery pass: its name (for the log) and the
# step, which returns its counts.
Pass = tuple[str, Callable[[Runtime], Mapping[str, int]]]


class DeliveryLoop:
    """Runs ``run_due`` every ``interval`` seconds in a daemon thread, until ``stop``; and
    with it the ``passes`` handed in by the application (the telephony housekeeping: stale
    calls, recording downloads, issue 15; the queue dispatch, ADR 0023). Handed in, not
    imported here: those features build on delivery, not delivery on them (ADR 0033)."""

    def __init__(self, rt: Runtime, interval: float, *, passes: Sequence[Pass]) -> None:
        self.rt = rt
        self.interval = interval
        self.passes = tuple(passes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="permanence-delivery", daemon=True)
        self.backlog = Backlog()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                counts = run_due(self.rt, backlog=self.backlog)
                if any(counts.values()):
                    log.info("delivery pass: %s", counts)
            except OutcomesNotRecorded as exc:
                log.error(
                    "delivery pass stopped: %s; kept to record at the next pass, not resent", exc
                )
            except Exception as exc:  # keep the loop alive; the next pass retries
                log.error("delivery pass failed: %s", infra.describe(exc))
            self._housekeeping()
            self._stop.wait(self.interval)

    def _housekeeping(self) -> None:
        for name, step in self.passes:
            try:
                counts = step(self.rt)
                if any(counts.values()):
                    log.info("%s: %s", name, counts)
            except Exception as exc:  # keep the loop alive; the next pass retries
                log.error("%s pass failed: %s", name, infra.describe(exc))
