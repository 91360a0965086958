"""Prometheus metrics (``GET /metrics``, docs/deployment.md, Monitoring).

Labels are account slugs and codes only - never a name, a number, an address or free text.
The figures about the service's work are computed from the database at each scrape, so every
replica (and every worker process) answers the same, right figures; only the request latency
histogram is the scraped process's own (Prometheus scrapes each replica and sums).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from permanence import infra
from permanence.context import AccessContext
from permanence.runtime import Runtime

log = logging.getLogger("permanence.metrics")

PREFIX = "permanence"
# Counted over this window: calls by outcome, messages taken.
WINDOW = dt.timedelta(hours=24)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))


class DatabaseCollector(Collector):
    """Gauges computed from the database at each scrape."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        up = _gauge("database_up", "1 when the database answered this scrape's queries")
        full = _gauge(
            "storage_full", "1 when the data directory's disk is (almost) full (/readyz too)"
        )
        full.add_metric([], 1.0 if infra.disk_full(self.rt.settings.data_dir) else 0.0)
        try:
            metrics = list(self._from_database(infra_now()))
        except Exception as exc:
            if infra.classify(exc) is None:
                raise
            log.warning("metrics: database not available (%s)", infra.describe(exc))
            up.add_metric([], 0.0)
            yield from (up, full)
            return
        up.add_metric([], 1.0)
        yield from (up, full, *metrics)

    def _from_database(self, now: dt.datetime) -> Iterator[Metric]:
        from permanence.accounts.model import Account

        with self.rt.db.session(AccessContext.system("metrics"), readonly=True) as s:
            accounts = s.execute(select(Account.id, Account.slug).order_by(Account.slug)).all()
            yield from _per_account(s, [(a[0], a[1]) for a in accounts], now)
            yield from _operators(s)
            yield from _breaches(s, now)
            yield from _retention(s)
            yield from _audit(s, now)


def infra_now() -> dt.datetime:
    from permanence.db import utcnow

    return utcnow()


def _per_account(
    session: Session, accounts: list[tuple[Any, str]], now: dt.datetime
) -> Iterator[Metric]:
    from permanence.calls.model import Call
    from permanence.db import acting_for
    from permanence.delivery.model import Delivery, Escalation, Status
    from permanence.messages.model import Message
    from permanence.recordings.model import RecordingDownload
    from permanence.rights.model import CLOSED_STATES, RightsRequest
    from permanence.stats.service import STALE_WAIT

    calls = _gauge(
        "calls_last_24h",
        "Calls started in the last 24 hours, by outcome (calls.outcome: answered, voicemail, "
        "abandoned, failed, expired, transferred, callback_request; 'in_progress' while the "
        "call goes on)",
        ["account", "outcome"],
    )
    waiting = _gauge("calls_waiting", "Calls waiting for an operator now", ["account"])
    longest = _gauge(
        "calls_longest_wait_seconds", "How long the longest waiting call has waited", ["account"]
    )
    taken = _gauge("messages_taken_last_24h", "Messages taken in the last 24 hours", ["account"])
    deliveries = _gauge(
        "deliveries",
        "Deliveries held in the ledger, by channel and state (pending rows that failed an "
        "attempt are 'retrying')",
        ["account", "channel", "state"],
    )
    escalations = _gauge("escalations", "Escalation clocks by state", ["account", "state"])
    recordings = _gauge(
        "recordings_at_provider",
        "Recordings the provider still holds (to fetch, or fetched and not yet deleted there)",
        ["account"],
    )
    rights_open = _gauge("rights_requests_open", "Data-subject requests open", ["account"])
    rights_overdue = _gauge(
        "rights_requests_overdue", "Data-subject requests open past their due date", ["account"]
    )
    closed = [s.value for s in CLOSED_STATES]
    since = now - WINDOW
    for account_id, slug in accounts:
        with acting_for(session, account_id):
            mine = Call.account_id == account_id
            rows = session.execute(
                select(Call.outcome, func.count())
                .where(mine, Call.started_at >= since)
                .group_by(Call.outcome)
            ).all()
            by_outcome = {outcome or "in_progress": int(n) for outcome, n in rows}
            for key, n in sorted(by_outcome.items()):
                calls.add_metric([slug, key], n)
            wait_row = session.execute(
                select(func.count(), func.min(Call.started_at)).where(
                    mine,
                    Call.status.in_(("queued", "ringing")),
                    Call.answered_at.is_(None),
                    Call.ended_at.is_(None),
                    Call.voicemail.is_(False),
                    Call.started_at >= now - STALE_WAIT,
                )
            ).one()
            waiting.add_metric([slug], int(wait_row[0]))
            oldest = _aware(wait_row[1])
            longest.add_metric([slug], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
            taken.add_metric(
                [slug],
                int(
                    session.scalar(
                        select(func.count()).where(
                            Message.account_id == account_id, Message.created_at >= since
                        )
                    )
                    or 0
                ),
            )
            retrying = and_(Delivery.status == Status.PENDING.value, Delivery.attempts > 0)
            ledger = session.execute(
                select(Delivery.channel, Delivery.status, retrying, func.count())
                .where(Delivery.account_id == account_id)
                .group_by(Delivery.channel, Delivery.status, retrying)
            ).all()
            by_state: dict[tuple[str, str], int] = {}
            for channel, status, is_retry, n in ledger:
                pair = (str(channel), "retrying" if is_retry else str(status))
                by_state[pair] = by_state.get(pair, 0) + int(n)
            for (channel, state), n in sorted(by_state.items()):
                deliveries.add_metric([slug, channel, state], n)
            for state, n in session.execute(
                select(Escalation.state, func.count())
                .where(Escalation.account_id == account_id)
                .group_by(Escalation.state)
            ).all():
                escalations.add_metric([slug, state], int(n))
            recordings.add_metric(
                [slug],
                int(
                    session.scalar(
                        select(func.count()).where(
                            RecordingDownload.account_id == account_id,
                            RecordingDownload.provider_deleted_at.is_(None),
                            RecordingDownload.state != "absent",
                        )
                    )
                    or 0
                ),
            )
            is_open = and_(
                RightsRequest.account_id == account_id, RightsRequest.state.not_in(closed)
            )
            rights_open.add_metric(
                [slug], int(session.scalar(select(func.count()).where(is_open)) or 0)
            )
            rights_overdue.add_metric(
                [slug],
                int(
                    session.scalar(select(func.count()).where(is_open, RightsRequest.due_at < now))
                    or 0
                ),
            )
    yield from (
        calls,
        waiting,
        longest,
        taken,
        deliveries,
        escalations,
        recordings,
        rights_open,
        rights_overdue,
    )


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _operators(session: Session) -> Iterator[Metric]:
    from permanence.calls.presence_model import PRESENCE_STATES, OperatorPresence

    g = _gauge("operators", "Operators by presence state", ["state"])
    counts = dict.fromkeys(PRESENCE_STATES, 0)
    for state, n in session.execute(
        select(OperatorPresence.state, func.count()).group_by(OperatorPresence.state)
    ).all():
        counts[state] = int(n)
    for state, n in counts.items():
        g.add_metric([state], n)
    yield g


def _breaches(session: Session, now: dt.datetime) -> Iterator[Metric]:
    from permanence.breaches import service as breaches

    open_ = _gauge("breach_open", "1 for each breach not closed", ["reference", "phase"])
    age = _gauge(
        "breach_age_seconds", "Time since the provider became aware of the breach", ["reference"]
    )
    clock = _gauge(
        "breach_clock_remaining_seconds",
        "Time left on a breach's clock (negative: overdue): controller_24h (every affected "
        "client told), cnil_72h (the clients' own deadline)",
        ["reference", "clock", "state"],
    )
    told = _gauge(
        "breach_controllers_notified",
        "1 when every affected client has been told of the breach",
        ["reference"],
    )
    for v in breaches.register(session, now):
        if v.breach.status == "closed":
            continue
        open_.add_metric([v.reference, str(v.breach.phase)], 1)
        age.add_metric([v.reference], (now - v.breach.aware_at).total_seconds())
        for c in (v.controller_clock, v.cnil_clock):
            clock.add_metric([v.reference, c.code, c.state(now)], c.remaining(now).total_seconds())
        told.add_metric([v.reference], 1 if v.controller_clock.met_at is not None else 0)
    yield from (open_, age, clock, told)


def _retention(session: Session) -> Iterator[Metric]:
    from permanence.audit.model import AuditEntry

    last = _gauge(
        "retention_last_run_timestamp_seconds", "When a retention sweep last finished (Unix time)"
    )
    deleted = _gauge("retention_last_run_deleted", "Rows the last retention sweep deleted")
    row = session.execute(
        select(AuditEntry.ts, AuditEntry.body)
        .where(AuditEntry.action == "retention.sweep")
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    ).first()
    if row is not None:
        last.add_metric([], _aware(row[0]).timestamp())  # type: ignore[union-attr]
        details = json.loads(row[1]).get("details") or {}
        deleted.add_metric([], float(details.get("deleted", 0)))
    yield from (last, deleted)


def _audit(session: Session, now: dt.datetime) -> Iterator[Metric]:
    from permanence.audit.model import AuditCheckpoint, AuditHead

    length = _gauge("audit_chain_length", "Entries in the audit log's hash chain")
    age = _gauge(
        "audit_checkpoint_age_seconds",
        "Age of the latest signed checkpoint of the audit chain (absent: none yet)",
    )
    length.add_metric([], float(session.scalar(select(AuditHead.seq).limit(1)) or 0))
    latest = _aware(session.scalar(select(func.max(AuditCheckpoint.created_at))))
    if latest is not None:
        age.add_metric([], (now - latest).total_seconds())
    yield from (length, age)


class Metrics:
    """The registry of one application: the database gauges and the request histogram."""

    def __init__(self, rt: Runtime) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(DatabaseCollector(rt))
        self.latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time to answer a request, by route template and status class",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.latency.labels(method, route, f"{status // 100}xx").observe(seconds)

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def clock() -> float:
    return time.perf_counter()
