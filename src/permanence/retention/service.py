"""Retention: a schedule derived from each record's mandate version, legal holds that pause
it, and a sweep that deletes what is due.

Each kind of record registers how to find its rows: its table, the date its period runs
from (indexed with the account), and how to read the period from a mandate version for one
group of rows (a purpose, or a recording kind). A record is due when ``anchor + period <=
now``; a period the mandate does not declare means the record must not be kept (see
``Mandate.retention``), so it is due at its anchor. Periods are calendar durations, so each
group's period is turned into an exact cutoff date once, and the database finds due rows
with an index range scan: ``anchor <= cutoff``.

The sweep is batched (ids selected in batches, deleted by id, one transaction and one audit
entry per batch), idempotent (a second run finds nothing), and reports counts only.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    and_,
    delete,
    func,
    not_,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import Session

from permanence.accounts.model import Account, MandateVersion
from permanence.audit import service as audit
from permanence.calls.model import Call
from permanence.context import AccessContext, Role
from permanence.db import Database, ctx_of, utcnow
from permanence.errors import NotFound, PermissionDenied, ValidationFailed
from permanence.evaluations.model import Evaluation
from permanence.evaluations.service import period as evaluation_period
from permanence.filestore import RecordingStore
from permanence.mandates.base import RetentionKind
from permanence.mandates.durations import IsoDuration
from permanence.mandates.mandate import Mandate
from permanence.mandates.parsing import parse_mandate
from permanence.messages.model import Appointment, Message
from permanence.recordings.model import Recording
from permanence.retention.model import LegalHold

log = logging.getLogger("permanence.retention")

# pg_try_advisory_lock key: one sweeper across replicas ("permret1").
ADVISORY_LOCK_KEY = 0x7065726D72657431
SQLITE_CACHE_KIB = 64 * 1024


def cutoff(period: IsoDuration | None, now: dt.datetime) -> dt.datetime:
    """The latest anchor that is due at ``now``: max t such that ``period.add_to(t) <= now``.

    ``add_to`` is non-decreasing in t (month ends are clamped), so a binary search on
    microseconds finds it exactly, whatever the calendar.
    """
    if period is None:
        return now
    span = dt.timedelta(
        days=366 * period.years + 31 * period.months + 7 * period.weeks + period.days + 2,
        hours=period.hours,
        minutes=period.minutes,
        seconds=period.seconds,
    )
    lo, hi = now - span, now  # add_to(lo) <= now always holds
    one = dt.timedelta(microseconds=1)
    while hi - lo > one:
        mid = lo + (hi - lo) // 2
        if period.add_to(mid) <= now:
            lo = mid
        else:
            hi = mid - one
    return hi if period.add_to(hi) <= now else lo


@dataclass(frozen=True)
class Group:
    """Rows of one mandate version sharing a period: ``where`` selects them."""

    mandate_id: uuid.UUID
    where: ColumnElement[bool]
    period: IsoDuration | None


@dataclass(frozen=True)
class RecordKind:
    name: str
    model: Any
    anchor: Any
    groups: Callable[[uuid.UUID, Mandate], Iterable[tuple[ColumnElement[bool], IsoDuration | None]]]
    # Storage keys of files that go with these rows (deleted once the rows are).
    files: Callable[[Session, list[uuid.UUID]], list[str]] | None = None
    # Rows held because a hold names another record (a recording's call).
    extra_holds: Callable[[uuid.UUID], ColumnElement[bool]] | None = None
    # What else changes when these rows go, in the same transaction (a call's recording state).
    before_delete: Callable[[Session, list[uuid.UUID]], None] | None = None


REGISTRY: dict[str, RecordKind] = {}


def register(kind: RecordKind) -> RecordKind:
    REGISTRY[kind.name] = kind
    return kind


def _by_purpose(model: Any, kind: RetentionKind) -> Callable[..., Any]:
    def groups(
        _mid: uuid.UUID, mandate: Mandate
    ) -> Iterable[tuple[ColumnElement[bool], IsoDuration | None]]:
        for p in mandate.purposes:
            yield model.purpose == p.code, mandate.retention(kind, p.code)

    return groups


def _recordings_deleted(session: Session, ids: list[uuid.UUID]) -> None:
    """The calls whose recording goes say so: ``recording_state = deleted``."""
    calls = select(Recording.call_id).where(Recording.id.in_(ids), Recording.kind == "call")
    session.execute(
        update(Call)
        .where(Call.id.in_(calls), Call.recording_state == "stored")
        .values(recording_state="deleted")
        .execution_options(synchronize_session=False)
    )


def _recording_files(session: Session, ids: list[uuid.UUID]) -> list[str]:
    return list(session.scalars(select(Recording.storage_key).where(Recording.id.in_(ids))))


def _call_files(session: Session, ids: list[uuid.UUID]) -> list[str]:
    return list(session.scalars(select(Recording.storage_key).where(Recording.call_id.in_(ids))))


def _held_ids(account_id: uuid.UUID, kind: str) -> Any:
    return select(LegalHold.record_id).where(
        LegalHold.account_id == account_id,
        LegalHold.released_at.is_(None),
        LegalHold.record_kind == kind,
        LegalHold.record_id.is_not(None),
    )


register(
    RecordKind("messages", Message, Message.created_at, _by_purpose(Message, RetentionKind.MESSAGE))
)
register(
    RecordKind(
        "appointments",
        Appointment,
        Appointment.starts_at,
        _by_purpose(Appointment, RetentionKind.APPOINTMENT),
    )
)
register(
    RecordKind(
        "calls",
        Call,
        Call.started_at,
        lambda _mid, m: [(Call.id.is_not(None), m.retention(RetentionKind.CALL_LOG))],
        files=_call_files,
        # Deleting a call takes its recordings along: a held recording holds its call.
        extra_holds=lambda account_id: Call.id.in_(
            select(Recording.call_id).where(Recording.id.in_(_held_ids(account_id, "recordings")))
        ),
    )
)
register(
    RecordKind(
        "recordings",
        Recording,
        Recording.created_at,
        # A voicemail is a message the caller left; a call recording follows the policy.
        lambda _mid, m: [
            (Recording.kind == "call", m.retention(RetentionKind.RECORDING)),
            (Recording.kind == "voicemail", m.retention(RetentionKind.MESSAGE)),
        ],
        files=_recording_files,
        before_delete=_recordings_deleted,
        extra_holds=lambda account_id: Recording.call_id.in_(_held_ids(account_id, "calls")),
    )
)
register(
    RecordKind(
        "evaluations",
        Evaluation,
        Evaluation.created_at,
        # The provider's grid of a call: the mandate's period, at most 1 year (CNIL).
        lambda _mid, m: [(Evaluation.id.is_not(None), evaluation_period(m))],
    )
)


# -- legal holds ----------------------------------------------------------------------------

HOLDERS = frozenset({Role.DPO, Role.ADMIN, Role.SYSTEM})


def place_hold(
    session: Session,
    *,
    reason: str,
    caller_id: uuid.UUID | None = None,
    record_kind: str | None = None,
    record_id: uuid.UUID | None = None,
) -> LegalHold:
    """Hold the whole account, one caller, or one record (kind and id) until released."""
    ctx = ctx_of(session)
    if ctx.role not in HOLDERS:
        raise PermissionDenied("legal holds are placed by the DPO or an administrator")
    account_id = ctx.require_account()
    if (record_kind is None) != (record_id is None):
        raise ValidationFailed("a record hold needs both the record kind and the record id")
    if record_kind is not None and record_kind not in REGISTRY:
        raise ValidationFailed(f"record kind must be one of: {', '.join(sorted(REGISTRY))}")
    if caller_id is not None and record_kind is not None:
        raise ValidationFailed("hold either a caller or a record, not both")
    if record_kind is not None:
        model = REGISTRY[record_kind].model
        row = session.get(model, record_id)
        if row is None or row.account_id != account_id:
            raise NotFound("no such record")
    hold = LegalHold(
        account_id=account_id,
        caller_id=caller_id,
        record_kind=record_kind,
        record_id=record_id,
        reason=reason,
        created_by=ctx.actor_id,
    )
    session.add(hold)
    session.flush()
    audit.record(
        session,
        "retention.hold",
        "legal_hold",
        hold.id,
        subject_id=caller_id,
        details={"reason": reason, "kind": record_kind},
    )
    return hold


def release_hold(session: Session, hold_id: uuid.UUID) -> None:
    ctx = ctx_of(session)
    if ctx.role not in HOLDERS:
        raise PermissionDenied("legal holds are released by the DPO or an administrator")
    hold = session.get(LegalHold, hold_id)
    if hold is None or hold.account_id != ctx.account_id:
        raise NotFound("no such legal hold")
    if hold.released_at is None:
        hold.released_at = utcnow()
        audit.record(session, "retention.release", "legal_hold", hold.id)


# -- the sweep ------------------------------------------------------------------------------


@dataclass
class SweepReport:
    dry_run: bool
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (slug, kind) -> rows
    held_accounts: list[str] = field(default_factory=list)
    skipped: bool = False  # another replica holds the lock
    staff_stats: int = 0  # per-operator daily aggregates past the staff retention period

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def lines(self) -> list[str]:
        if self.skipped:
            return ["retention: another process is sweeping; nothing done"]
        verb = "due" if self.dry_run else "deleted"
        out = [f"{slug} {kind}: {n} {verb}" for (slug, kind), n in sorted(self.counts.items())]
        out += [f"{slug}: under legal hold, nothing deleted" for slug in self.held_accounts]
        if self.staff_stats:
            out.append(f"staff statistics (operator-days): {self.staff_stats} {verb}")
        out.append(f"total: {self.total} {verb}")
        return out


def _due_condition(
    session: Session, kind: RecordKind, account_id: uuid.UUID, now: dt.datetime
) -> tuple[ColumnElement[bool], dt.datetime] | None:
    """Rows of the account that are due and not held, and the latest due anchor."""
    versions = session.scalars(
        select(MandateVersion).where(MandateVersion.account_id == account_id)
    ).all()
    branches: list[ColumnElement[bool]] = []
    latest: dt.datetime | None = None
    for mv in versions:
        mandate = parse_mandate(mv.document)
        for where, period in kind.groups(mv.id, mandate):
            c = cutoff(period, now)
            latest = c if latest is None or c > latest else latest
            branches.append(and_(kind.model.mandate_id == mv.id, where, kind.anchor <= c))
    if not branches or latest is None:
        return None
    held_callers = select(LegalHold.caller_id).where(
        LegalHold.account_id == account_id,
        LegalHold.released_at.is_(None),
        LegalHold.caller_id.is_not(None),
    )
    # A record that names no caller (an evaluation grid) is held by account or record only.
    caller = getattr(kind.model, "caller_id", None)
    cond = and_(
        kind.model.account_id == account_id,
        kind.anchor <= latest,
        or_(*branches),
        kind.model.id.not_in(_held_ids(account_id, kind.name)),
        or_(caller.is_(None), caller.not_in(held_callers)) if caller is not None else true(),
        not_(kind.extra_holds(account_id)) if kind.extra_holds else true(),
    )
    return cond, latest


def _account_held(session: Session, account_id: uuid.UUID) -> bool:
    q = select(LegalHold.id).where(
        LegalHold.account_id == account_id,
        LegalHold.released_at.is_(None),
        LegalHold.caller_id.is_(None),
        LegalHold.record_kind.is_(None),
    )
    return session.scalars(q.limit(1)).first() is not None


def sweep(
    db: Database,
    store: RecordingStore,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    batch: int = 5000,
    kinds: Iterable[str] | None = None,
    staff_stats_days: int = 90,
    progress: Callable[[list[tuple[uuid.UUID, str]]], Iterable[tuple[uuid.UUID, str]]]
    | None = None,
) -> SweepReport:
    """Delete every due record that is not under hold, account by account, kind by kind;
    then the per-operator statistics older than ``staff_stats_days`` (provider staff data,
    whatever the mandates say: PERMANENCE_STAFF_STATS_RETENTION_DAYS)."""
    from permanence.stats.service import count_staff_stats_due, purge_staff_stats

    now = now or utcnow()
    report = SweepReport(dry_run=dry_run)
    with db.session(AccessContext.system("retention"), readonly=True) as s:
        accounts = [(a.id, a.slug) for a in s.scalars(select(Account).order_by(Account.slug))]
    # Recordings before calls: a call's deletion would otherwise take its recordings along.
    order = ["recordings", *[k for k in REGISTRY if k != "recordings"]]
    wanted = [REGISTRY[k] for k in order if kinds is None or k in set(kinds)]
    for account_id, slug in progress(accounts) if progress else accounts:
        ctx = AccessContext.system("retention", account_id)
        with db.session(ctx, readonly=True) as s:
            if _account_held(s, account_id):
                report.held_accounts.append(slug)
                continue
        for kind in wanted:
            n = _sweep_kind(db, store, ctx, kind, account_id, now, dry_run, batch)
            if n:
                report.counts[(slug, kind.name)] = n
    if kinds is None or "staff_stats" in set(kinds):
        with db.session(AccessContext.system("retention"), readonly=dry_run) as s:
            if dry_run:
                report.staff_stats = count_staff_stats_due(s, staff_stats_days, now=now)
            else:
                report.staff_stats = purge_staff_stats(s, staff_stats_days, now=now)
    if not dry_run:
        # When the sweep last ran and what it deleted: /metrics reads it (any replica).
        with db.session(AccessContext.system("retention")) as s:
            audit.record(s, "retention.sweep", "retention", details={"deleted": report.total})
    return report


def _sweep_kind(
    db: Database,
    store: RecordingStore,
    ctx: AccessContext,
    kind: RecordKind,
    account_id: uuid.UUID,
    now: dt.datetime,
    dry_run: bool,
    batch: int,
) -> int:
    with db.session(ctx, readonly=True) as s:
        found = _due_condition(s, kind, account_id, now)
        if found is None:
            return 0
        cond, _latest = found
        if dry_run:
            return int(s.scalar(select(func.count()).select_from(kind.model).where(cond)) or 0)
    total = 0
    since: dt.datetime | None = None
    while True:
        files: list[str] = []
        with db.session(ctx) as s:
            if not db.is_postgres:
                # Deleting by random UUIDs touches index pages all over: SQLite's default
                # 2 MiB page cache makes a million-row sweep several times slower.
                s.execute(text(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}"))
            q = select(kind.model.id, kind.anchor).where(cond)
            if since is not None:  # keyset: never rescan rows below the last batch
                q = q.where(kind.anchor >= since)
            rows = s.execute(q.order_by(kind.anchor).limit(batch)).all()
            if not rows:
                break
            ids = [r[0] for r in rows]
            since = rows[-1][1]
            if kind.files is not None:
                files = kind.files(s, ids)
            if kind.before_delete is not None:
                kind.before_delete(s, ids)
            s.execute(
                delete(kind.model)
                .where(kind.model.id.in_(ids))
                .execution_options(synchronize_session=False)
            )
            audit.record(s, "retention.delete", kind.name, details={"count": len(ids)})
        for key in files:  # after the commit: a rolled-back batch keeps its files
            store.delete(key)
        total += len(ids)
    if total:
        log.info("retention deleted %d %s", total, kind.name)
    return total


def sweep_exclusive(db: Database, store: RecordingStore, **kw: Any) -> SweepReport:
    """Sweep unless another process is sweeping (PostgreSQL advisory lock; SQLite has one
    writer at a time anyway, and each batch is its own transaction)."""
    if not db.is_postgres:
        return sweep(db, store, **kw)
    engine: Engine = db.engine
    with engine.connect() as conn:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
        conn.commit()
        if not got.scalar():
            return SweepReport(dry_run=bool(kw.get("dry_run")), skipped=True)
        try:
            return sweep(db, store, **kw)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
            conn.commit()


class Scheduler:
    """Runs the sweep every ``interval`` seconds in a daemon thread (inside ``serve``)."""

    def __init__(
        self,
        db: Database,
        store: RecordingStore,
        interval: float,
        batch: int,
        staff_stats_days: int = 90,
    ) -> None:
        self.db, self.store, self.interval, self.batch = db, store, interval, batch
        self.staff_stats_days = staff_stats_days
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                report = sweep_exclusive(
                    self.db, self.store, batch=self.batch, staff_stats_days=self.staff_stats_days
                )
                for line in report.lines():
                    log.info("%s", line)
            except Exception:  # keep serving; the next round retries
                log.exception("retention sweep failed")
