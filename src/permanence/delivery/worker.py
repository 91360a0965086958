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
import smtplib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence import __version__, infra
from permanence.accounts.model import Account, AccountStatus
from permanence.accounts.service import get_account, mandate_by_id
from permanence.audit import service as audit
from permanence.config import Settings
from permanence.context import AccessContext
from permanence.db import ctx_of, utcnow
from permanence.delivery import channels as content
from permanence.delivery.escalation import escalate_due
from permanence.delivery.model import ARRIVALS, Channel, Delivery, Event, Status
from permanence.delivery.own_channels import Sender, preparer
from permanence.delivery.ports import (
    HttpWebhookSender,
    SendFailed,
    SmsSender,
    WebhookRequest,
    WebhookSender,
    sms_gateway_for,
)
from permanence.delivery.service import (
    Notifiable,
    is_restricted,
    retry_delay,
    target_of,
    transition,
)
from permanence.delivery.webhook_secrets import signing_secrets
from permanence.errors import ValidationFailed
from permanence.mail import Mail, Mailer, mailer_for
from permanence.mandates.schema import EmailNotificationRecipient, Mandate, WebhookRecipient
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
class Channels:
    """The outside world the worker talks to."""

    mailer: Mailer | None
    webhooks: WebhookSender
    sms: SmsSender | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Channels:
        return cls(
            mailer=mailer_for(settings),
            webhooks=HttpWebhookSender(),
            sms=sms_gateway_for(settings),
        )


@dataclass(frozen=True)
class _Job:
    delivery_id: uuid.UUID
    attempt: int
    channel: Channel
    mail: Mail | None = None
    webhook: WebhookRequest | None = None
    sms: tuple[str, str] | None = None
    error: SendFailed | None = None  # could not even be prepared


@dataclass
class _Prepared:
    """What a claim transaction needs, read once per pass and account."""

    account: Account
    base_url: str
    mandates: dict[uuid.UUID, Mandate] = field(default_factory=dict)

    def mandate(self, session: Session, mandate_id: uuid.UUID | None) -> Mandate:
        if mandate_id is None:  # only OpenDSR callbacks have none, prepared apart
            raise SendFailed("mandate_missing", retry=False)
        if mandate_id not in self.mandates:
            self.mandates[mandate_id] = mandate_by_id(session, mandate_id)[1]
        return self.mandates[mandate_id]


@dataclass
class _Outcome:
    account_id: uuid.UUID
    job: _Job
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
            outcomes = [_Outcome(account_id, job, _send(job, channels), now) for job in jobs]
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
        outcomes = [_Outcome(account_id, job, _send(job, channels), now) for job in jobs]
        _record_all(rt, outcomes, None, counts, Backlog(), RECORD_RETRIES)
    return {k: counts[k] for k in ("sent", "delivered", "retrying", "failed", "cancelled")}


def _claim(
    session: Session,
    rt: Runtime,
    now: dt.datetime,
    n: int,
    counts: Counter[str],
    target_id: uuid.UUID | None = None,
) -> list[_Job]:
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
    prepared = _Prepared(get_account(session, rows[0].account_id), rt.settings.public_base_url)
    jobs: list[_Job] = []
    for row in rows:
        channel = Channel(row.channel)
        if channel is Channel.OPENDSR_CALLBACK:  # about a rights request, not a message
            row.attempts += 1
            row.next_attempt_at = now + LEASE
            jobs.append(_prepare_own(session, rt, prepared, row))
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
        jobs.append(_prepare(session, rt, prepared, row, msg, now))
    session.flush()
    return jobs


def _prepare(
    session: Session,
    rt: Runtime,
    prepared: _Prepared,
    row: Delivery,
    msg: Notifiable | None,
    now: dt.datetime,
) -> _Job:
    channel, event = Channel(row.channel), Event(row.event)
    mandate = prepared.mandate(session, row.mandate_id)
    account = prepared.account
    if channel is Channel.NOTICE_SMS:
        return _prepare_own(session, rt, prepared, row, mandate)
    voicemail = event is Event.VOICEMAIL
    link = (
        content.voicemail_link(prepared.base_url)
        if voicemail
        else content.portal_link(prepared.base_url, row.message_id)
    )
    urgent = bool(msg and msg.urgent)
    job = _Job(delivery_id=row.id, attempt=row.attempts, channel=channel)
    if channel is Channel.EMAIL:
        recipient = mandate.recipients[row.recipient_index]
        assert isinstance(recipient, EmailNotificationRecipient)
        if voicemail:
            text = content.voicemail_email(account.name, link)
        elif event is Event.NEW:
            text = content.message_email(account.name, link, urgent=urgent)
        else:
            text = content.change_email(account.name, link, event)
        mail = Mail(recipient.to, text.subject, text.body, delivery_id=str(row.id))
        return _with(job, mail=mail)
    if channel is Channel.WEBHOOK:
        recipient = mandate.recipients[row.recipient_index]
        assert isinstance(recipient, WebhookRecipient)
        secrets = signing_secrets(session, rt.keyring, recipient.secret_ref, now)
        if not secrets:
            return _with(job, error=SendFailed("secret_missing"))
        body = content.webhook_body(
            delivery_id=row.id,
            event=event,
            message_id=row.message_id,
            account_slug=account.slug,
            link=link,
            purpose=msg.purpose if msg else None,
            created_at=msg.created_at if msg else None,
            urgent=urgent,
            changed_at=row.created_at,
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"Permanence/{__version__}",
            "X-Permanence-Delivery": str(row.id),
            "X-Permanence-Event": content.webhook_event(event),
            content.SIGNATURE_HEADER: content.signature(secrets, body, int(now.timestamp())),
        }
        return _with(job, webhook=WebhookRequest(recipient.url, body, headers))
    assert mandate.on_call is not None
    contact = mandate.on_call.contacts[row.recipient_index]
    if channel is Channel.ESCALATION_EMAIL:
        assert contact.email is not None
        text = content.escalation_email(account.name, link, urgent=urgent)
        mail = Mail(contact.email, text.subject, text.body, delivery_id=str(row.id))
        return _with(job, mail=mail)
    return _with(job, sms=(contact.phone, content.escalation_sms(account.name, urgent=urgent)))


def _prepare_own(
    session: Session,
    rt: Runtime,
    prepared: _Prepared,
    row: Delivery,
    mandate: Mandate | None = None,
) -> _Job:
    """A channel its feature prepares (``delivery.own_channels``): an OpenDSR status
    callback (the request's status now, signed), the callers' notice by SMS (the number
    opened from the call only now, to send)."""
    channel = Channel(row.channel)
    job = _Job(delivery_id=row.id, attempt=row.attempts, channel=channel)
    sender = Sender(prepared.account.name, prepared.base_url, mandate)
    try:
        sending = preparer(channel)(session, rt, row, sender)
    except SendFailed as failure:
        return _with(job, error=failure)
    if isinstance(sending, WebhookRequest):
        return _with(job, webhook=sending)
    return _with(job, sms=sending)


def _with(job: _Job, **changes: object) -> _Job:
    return replace(job, **changes)  # type: ignore[arg-type]


def _send(job: _Job, channels: Channels) -> SendFailed | None:
    """Perform one attempt; the failure (a code), or None when it went through."""
    if job.error is not None:
        return job.error
    try:
        if job.mail is not None:
            if channels.mailer is None:
                return SendFailed("smtp_not_configured")
            _send_mail(channels.mailer, job.mail)
        elif job.webhook is not None:
            channels.webhooks.post(job.webhook)
        elif job.sms is not None:
            if channels.sms is None:
                return SendFailed("sms_not_configured")
            channels.sms.send(*job.sms)
    except SendFailed as failure:
        return failure
    return None


def _send_mail(mailer: Mailer, mail: Mail) -> None:
    try:
        mailer.send(mail)
    except ValidationFailed:
        # The mailer found personal data in the text: a bug to fix, never worth a retry.
        raise SendFailed("mail_refused", retry=False) from None
    except smtplib.SMTPRecipientsRefused:
        raise SendFailed("smtp_recipient_refused", retry=False) from None
    except smtplib.SMTPResponseException as exc:
        raise SendFailed(f"smtp_{exc.smtp_code}", retry=exc.smtp_code < 500) from None
    except (smtplib.SMTPException, OSError):
        raise SendFailed("smtp_unavailable") from None


def _record(
    session: Session,
    job: _Job,
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
