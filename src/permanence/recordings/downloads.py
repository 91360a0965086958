"""Recording downloads as jobs (issue 15).

The provider's recording callback only writes a ``RecordingDownload`` row and answers at
once (``telephony.service.recording_callback``). This worker — run by the delivery loop
inside ``serve``, by ``permanence telephony recordings`` for cron, and once right after
the callback — fetches the audio with retries and backoff, encrypts it as it streams into
the store, commits the ``Recording`` (and, for a voicemail, the call's outcome and the
notification to the account's recipients), then deletes the provider's copy. Every failed
attempt is audited with an error *code* (no personal data); after
``PERMANENCE_RECORDING_DOWNLOAD_ATTEMPTS`` the job gives up, and the compliance check
``recordings.at_provider`` fails for any recording still at the provider after that many
attempts or ``PERMANENCE_RECORDING_DOWNLOAD_MAX_HOURS``.

Network and file work happen between short transactions (an open transaction would hold
SQLite's write lock while the audio downloads). The provider's copy is deleted only once
ours is committed; an objected call's recording is deleted there without being fetched.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account, AccountStatus
from permanence.audit import service as audit
from permanence.calls.model import Call
from permanence.checks import CheckRun, check
from permanence.context import AccessContext
from permanence.crypto.stream import encrypt_stream
from permanence.db import utcnow
from permanence.errors import PermanenceError
from permanence.filestore import RecordingStore, storage_key, store_from_settings
from permanence.recordings.model import Recording, RecordingDownload
from permanence.runtime import Runtime
from permanence.telephony.ports import TelephonyApi, configured_apis

log = logging.getLogger("permanence.recordings")

REASON = "recordings:downloads"
LEASE = dt.timedelta(minutes=10)
BATCH = 20
PENDING, DISCARD, STORED, DONE, FAILED = "pending", "discard", "stored", "done", "failed"


def backoff(attempts: int) -> dt.timedelta:
    """After the n-th failed attempt: 1, 2, 4 … minutes, at most 6 hours."""
    return min(dt.timedelta(minutes=2 ** max(attempts - 1, 0)), dt.timedelta(hours=6))


def error_code(exc: BaseException) -> str:
    """A failure as a short code: never a URL, a body or anything the provider echoed."""
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.HTTPError):
        return "network"
    m = re.search(r"HTTP (\d{3})", str(exc))
    if m:
        return f"http_{m.group(1)}"
    return exc.__class__.__name__.lower()[:64]


@dataclass(frozen=True)
class _Job:
    id: uuid.UUID
    account_id: uuid.UUID
    call_id: uuid.UUID
    kind: str
    state: str
    provider_sid: str
    url: str
    duration_s: int | None
    attempts: int
    recording_id: uuid.UUID | None
    provider: str = "twilio"
    caller_id: uuid.UUID | None = None
    mandate_id: uuid.UUID | None = None
    dek: bytes = b""
    ad: bytes = b""


def run_due(
    rt: Runtime,
    api: TelephonyApi | None = None,
    store: RecordingStore | None = None,
    *,
    now: dt.datetime | None = None,
    only: tuple[uuid.UUID, uuid.UUID] | None = None,
) -> dict[str, int]:
    """One pass over every active account (or ``only`` = (account id, job id)); returns counts
    ``stored``, ``deleted_at_provider``, ``retrying``, ``failed``. Each recording is fetched
    from, and deleted at, the provider its call came through (``api``, when given, serves
    every call)."""
    now = now or utcnow()
    counts: Counter[str] = Counter()
    apis = configured_apis(rt.settings) if api is None else {}
    if api is None and not apis:
        return {k: 0 for k in ("stored", "deleted_at_provider", "retrying", "failed")}
    store = store or store_from_settings(rt.settings)
    with rt.db.session(AccessContext.system(REASON), readonly=True) as s:
        accounts = list(
            s.scalars(
                select(Account.id)
                .where(Account.status == AccountStatus.ACTIVE)
                .order_by(Account.id)
            ).all()
        )
    if only is not None:
        accounts = [only[0]]
    for account_id in accounts:
        ctx = AccessContext.system(REASON, account_id)
        while True:
            with rt.db.session(ctx) as s:
                jobs = _claim(s, rt, account_id, now, only[1] if only else None)
            if not jobs:
                break
            for job in jobs:
                port = api if api is not None else apis.get(job.provider)
                if port is None:  # a call of a provider whose API is not configured
                    if job.state == PENDING:
                        _failed(rt, ctx, job, "no_provider_api", now, counts)
                    continue
                _run(rt, ctx, port, store, job, now, counts)
            if only is not None or len(jobs) < BATCH:
                break
    return {k: counts[k] for k in ("stored", "deleted_at_provider", "retrying", "failed")}


def _claim(
    session: Session, rt: Runtime, account_id: uuid.UUID, now: dt.datetime, only: uuid.UUID | None
) -> list[_Job]:
    q = select(RecordingDownload).where(
        RecordingDownload.account_id == account_id,
        or_(
            RecordingDownload.state.in_((PENDING, DISCARD)),
            (RecordingDownload.state == STORED) & RecordingDownload.provider_deleted_at.is_(None),
        ),
        RecordingDownload.next_attempt_at <= now,
    )
    if only is not None:
        q = q.where(RecordingDownload.id == only)
    rows = session.scalars(
        q.order_by(RecordingDownload.next_attempt_at).limit(BATCH).with_for_update(skip_locked=True)
    ).all()
    providers: dict[uuid.UUID, str | None] = {
        call_id: provider
        for call_id, provider in session.execute(
            select(Call.id, Call.provider).where(Call.id.in_([row.call_id for row in rows]))
        )
    }
    jobs = []
    for row in rows:
        row.next_attempt_at = now + LEASE  # ours while we work on it
        if row.state == PENDING:
            row.attempts += 1
        job = _Job(
            row.id,
            row.account_id,
            row.call_id,
            row.kind,
            row.state,
            row.provider_sid,
            row.url,
            row.duration_s,
            row.attempts,
            row.recording_id,
            providers.get(row.call_id) or "twilio",
        )
        if row.state == PENDING:
            call = session.get(Call, row.call_id)
            if call is None or call.caller_id is None:
                row.state, row.last_error = FAILED, "call_gone"
                continue
            rec_id = uuid.uuid4()
            cipher = rt.keyring.cipher(session, call.account_id, call.caller_id)
            job = _Job(
                **{
                    **job.__dict__,
                    "recording_id": rec_id,
                    "caller_id": call.caller_id,
                    "mandate_id": call.mandate_id,
                    "dek": cipher.dek,
                    "ad": cipher.ad("recordings", "audio", rec_id),
                }
            )
        jobs.append(job)
    return jobs


def _run(
    rt: Runtime,
    ctx: AccessContext,
    api: TelephonyApi,
    store: RecordingStore,
    job: _Job,
    now: dt.datetime,
    counts: Counter[str],
) -> None:
    if job.state == PENDING and not _fetch(rt, ctx, api, store, job, now, counts):
        return
    _delete_at_provider(rt, ctx, api, job, now, counts)


def _fetch(
    rt: Runtime,
    ctx: AccessContext,
    api: TelephonyApi,
    store: RecordingStore,
    job: _Job,
    now: dt.datetime,
    counts: Counter[str],
) -> bool:
    assert job.recording_id is not None and job.caller_id is not None
    key = storage_key(job.account_id, job.recording_id)

    def write(sink: object) -> int:
        with api.fetch_recording(job.url) as chunks:
            return encrypt_stream(job.dek, job.ad, chunks, sink)  # type: ignore[arg-type]

    import httpx

    try:
        size = store.put(key, write)
    except (PermanenceError, httpx.HTTPError, OSError) as exc:
        _failed(rt, ctx, job, error_code(exc), now, counts)
        return False
    try:
        with rt.db.session(ctx) as s:
            row = s.get(RecordingDownload, job.id)
            call = s.get(Call, job.call_id)
            if row is None or call is None:  # erased meanwhile: keep nothing
                raise LookupError("gone")
            assert job.mandate_id is not None
            s.add(
                Recording(
                    id=job.recording_id,
                    account_id=job.account_id,
                    call_id=job.call_id,
                    caller_id=job.caller_id,
                    mandate_id=job.mandate_id,
                    kind=job.kind,
                    provider_sid=job.provider_sid,
                    storage_key=key,
                    size_bytes=size,
                    duration_s=job.duration_s,
                )
            )
            row.state, row.recording_id, row.last_error = STORED, job.recording_id, None
            row.next_attempt_at = now
            s.flush()
            if job.kind == "call":
                call.recording_state = "stored"
            audit.record(
                s,
                "recording.store",
                "recording",
                job.recording_id,
                subject_id=job.caller_id,
                details={"call": job.call_id, "kind": job.kind, "bytes": size},
            )
            if job.kind == "voicemail":
                _new_voicemail(s, call, job)
    except LookupError:
        store.delete(key)
        return False
    except BaseException:
        store.delete(key)
        raise
    counts["stored"] += 1
    return True


def _new_voicemail(session: Session, call: Call, job: _Job) -> None:
    """The voicemail is ours: the call's outcome says so, and the account's recipients are
    told (portal, e-mail, webhook, escalation: the message's channels)."""
    from permanence.delivery import service as delivery
    from permanence.telephony.service import voicemail_left

    assert job.recording_id is not None and job.mandate_id is not None
    voicemail_left(session, call)
    notice = delivery.voicemail_notice(session, job.recording_id)
    assert notice is not None
    delivery.schedule_voicemail(session, notice, job.mandate_id)


def _failed(
    rt: Runtime,
    ctx: AccessContext,
    job: _Job,
    code: str,
    now: dt.datetime,
    counts: Counter[str],
) -> None:
    with rt.db.session(ctx) as s:
        row = s.get(RecordingDownload, job.id)
        if row is None:
            return
        row.last_error = code
        gave_up = row.attempts >= rt.settings.recording_download_attempts
        if gave_up:
            row.state, row.next_attempt_at = FAILED, None
        else:
            row.next_attempt_at = now + backoff(row.attempts)
        audit.record(
            s,
            "recording.fetch_failed",
            "call",
            job.call_id,
            details={"kind": job.kind, "attempt": row.attempts, "error": code, "gave_up": gave_up},
        )
    counts["failed" if gave_up else "retrying"] += 1
    log.warning("recording fetch failed: %s (attempt %d)", code, job.attempts)


def _delete_at_provider(
    rt: Runtime,
    ctx: AccessContext,
    api: TelephonyApi,
    job: _Job,
    now: dt.datetime,
    counts: Counter[str],
) -> None:
    import httpx

    try:
        api.delete_recording(job.provider_sid)
    except (PermanenceError, httpx.HTTPError) as exc:
        code = error_code(exc)
        with rt.db.session(ctx) as s:
            row = s.get(RecordingDownload, job.id)
            if row is not None:
                row.last_error = code
                row.next_attempt_at = now + backoff(max(row.attempts, 1))
                audit.record(
                    s,
                    "recording.provider_delete_failed",
                    "call",
                    job.call_id,
                    details={"kind": job.kind, "error": code},
                )
        counts["retrying"] += 1
        return
    with rt.db.session(ctx) as s:
        row = s.get(RecordingDownload, job.id)
        if row is not None:
            row.provider_deleted_at, row.next_attempt_at = now, None
            if row.state == DISCARD:
                row.state = DONE
            if row.recording_id is not None:
                rec = s.get(Recording, row.recording_id)
                if rec is not None:
                    rec.provider_deleted_at = now
        audit.record(
            s, "recording.provider_delete", "call", job.call_id, details={"kind": job.kind}
        )
    counts["deleted_at_provider"] += 1


def run_in_background(
    rt: Runtime,
    api_factory: Callable[[], TelephonyApi],
    account_id: uuid.UUID,
    job_id: uuid.UUID,
) -> None:
    """Right after the callback: try this job at once (a failure waits for the worker)."""
    try:
        run_due(rt, api_factory(), only=(account_id, job_id))
    except Exception as exc:  # the worker retries; never let this reach the provider
        log.error("recording download failed: %s", exc.__class__.__name__)


@check("recordings.at_provider", "No recording stays at the telephony provider")
def _at_provider(run: CheckRun) -> tuple[bool, str, list[str]]:
    """A recording the provider still holds after N attempts or M hours outlives every
    retention period without anyone knowing: the DPO must see it."""
    settings = run.rt.settings
    too_old = run.now - dt.timedelta(hours=settings.recording_download_max_hours)
    evidence: list[str] = []
    for account in run.accounts():
        with run.session(account.id) as s:
            rows = s.execute(
                select(RecordingDownload.provider_sid, RecordingDownload.attempts)
                .where(
                    RecordingDownload.account_id == account.id,
                    RecordingDownload.provider_deleted_at.is_(None),
                    RecordingDownload.state != "absent",
                    or_(
                        RecordingDownload.created_at <= too_old,
                        RecordingDownload.attempts >= settings.recording_download_attempts,
                    ),
                )
                .order_by(RecordingDownload.created_at)
                .limit(50)
            ).all()
        evidence += [f"{account.slug}: {sid} ({n} attempts)" for sid, n in rows]
    if evidence:
        return False, f"{len(evidence)} recording(s) still at the provider", evidence
    return True, "every recording announced by the provider was fetched and deleted there", []
