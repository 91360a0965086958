"""What the DPO's rights desk reads beyond the request itself: the register with its filters,
a request's history from the audit log, the preview of an execution, the register as CSV.

The desk's actions (intake, verification, execution, extension, refusal) are the functions
of ``rights.service``: this module only reads. Every function takes a session opened for
one account (``Database.session(ctx)``; row-level security applies on PostgreSQL).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.audit.model import AuditEntry
from permanence.db import ctx_of
from permanence.delivery.ledger import Recipient
from permanence.errors import ValidationFailed
from permanence.rights import clock, letters
from permanence.rights import service as rights
from permanence.rights.model import CLOSED_STATES, OPEN_STATES, Kind, RightsRequest, State
from permanence.spreadsheet import safe_cell

REGISTER_LIMIT = 500  # rows per account on one page of the register
HISTORY_LIMIT = 500


reference = letters.reference  # the short reference a requester is given ("DR-1A2B3C4D")


@dataclass(frozen=True)
class Filters:
    """The register's filters; empty means "all"."""

    state: str = ""  # "", "open", "closed" or a State value
    kind: str = ""  # "" or a Kind value
    overdue: bool = False
    received_from: dt.date | None = None  # Paris days, inclusive
    received_to: dt.date | None = None

    def check(self) -> None:
        problems = []
        states = {"", "open", "closed", *(s.value for s in State)}
        if self.state not in states:
            problems.append("state: not a state of a request")
        if self.kind not in {"", *(k.value for k in Kind)}:
            problems.append("kind: not a right")
        if self.received_from and self.received_to and self.received_from > self.received_to:
            problems.append("received: the first day is after the last")
        if problems:
            raise ValidationFailed("the filters are not valid", problems)


def register(
    session: Session, filters: Filters, now: dt.datetime, *, limit: int = REGISTER_LIMIT
) -> list[RightsRequest]:
    """The account's requests, open and closed, filtered on indexed columns; open ones
    first (the least time left first), then closed ones (the latest received first)."""
    filters.check()
    account_id = ctx_of(session).require_account()
    q = select(RightsRequest).where(RightsRequest.account_id == account_id)
    open_values = [s.value for s in OPEN_STATES]
    if filters.state == "open":
        q = q.where(RightsRequest.state.in_(open_values))
    elif filters.state == "closed":
        q = q.where(RightsRequest.state.in_([s.value for s in CLOSED_STATES]))
    elif filters.state:
        q = q.where(RightsRequest.state == filters.state)
    if filters.kind:
        q = q.where(RightsRequest.kind == filters.kind)
    if filters.overdue:
        q = q.where(RightsRequest.state.in_(open_values), RightsRequest.due_at < now)
    if filters.received_from:
        first = dt.datetime.combine(filters.received_from, dt.time(0), tzinfo=clock.PARIS)
        q = q.where(RightsRequest.received_at >= first)
    if filters.received_to:
        q = q.where(RightsRequest.received_at <= clock.end_of_day(filters.received_to))
    rows = list(session.scalars(q.order_by(RightsRequest.received_at.desc()).limit(limit)))
    is_open = set(open_values)
    rows.sort(key=lambda r: (r.state not in is_open, r.due_at if r.state in is_open else now))
    return rows


# -- history ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    at: dt.datetime
    action: str  # the audit action code (rights.receive, rights.verified…)
    role: str
    details: dict[str, Any]


def history(session: Session, req: RightsRequest) -> list[Event]:
    """Every audit entry about the request, oldest first. Found through indexed columns: the
    subject's entries when the request names one (with the erasure, recorded on the subject),
    else the rights entries since the request was received."""
    since = req.received_at - dt.timedelta(seconds=5)
    if req.subject_id is not None:
        entries = audit.search(
            session, subject_id=req.subject_id, action="rights.", since=since, limit=HISTORY_LIMIT
        )
    else:
        entries = []
    # Entries written before the subject was known (or with none) carry no subject.
    q = (
        select(AuditEntry)
        .where(AuditEntry.action.startswith("rights."), AuditEntry.ts >= since)
        .where(AuditEntry.subject_id.is_(None))
        .order_by(AuditEntry.seq)
        .limit(HISTORY_LIMIT)
    )
    if req.completed_at or req.cancelled_at:
        end = (req.completed_at or req.cancelled_at or since) + dt.timedelta(minutes=1)
        q = q.where(AuditEntry.ts <= end)
    entries += list(session.scalars(q))
    mine = f"rights_request:{req.id}"
    seen: set[int] = set()
    out: list[Event] = []
    for e in sorted(entries, key=lambda e: e.seq):
        if e.seq in seen:
            continue
        seen.add(e.seq)
        body = json.loads(e.body)
        closed_at = req.completed_at or req.cancelled_at
        about_subject = (
            body.get("object", "").startswith("caller:")
            and closed_at is not None
            and abs((e.ts - closed_at).total_seconds()) < 60
        )
        if body.get("object") != mine and not about_subject:
            continue
        details = body.get("details") or {}
        out.append(Event(e.ts, e.action, body.get("role") or "", dict(details)))
    return out


# -- preview ----------------------------------------------------------------------------------


@dataclass
class Preview:
    """What executing the request would touch: the subject's records (counts), who received
    their messages (Art. 19), the legal holds that would turn an erasure into a refusal."""

    subject_found: bool
    counts: dict[str, int] = field(default_factory=dict)
    recipients: list[Recipient] = field(default_factory=list)
    holds: int = 0


def preview(session: Session, request_id: uuid.UUID) -> Preview:
    """Counts and recipients only (no content). The requester must be verified (nothing is
    disclosed before, ``rights.recipients`` refuses): the read of the recipients is audited."""
    req = rights.get(session, request_id)
    caller = rights.subject_of(session, req)
    if caller is None:
        return Preview(subject_found=False)
    recipients = rights.recipients(session, request_id)
    counts = rights.records_of(session, caller).counts()
    holds = rights.holds_on(session, caller) if req.kind == Kind.ERASURE.value else 0
    return Preview(True, counts, recipients, holds)


# -- the register as CSV ----------------------------------------------------------------------

CSV_COLUMNS = (
    "reference",
    "request_id",
    "account",
    "subject_id",
    "right",
    "source",
    "received_via",
    "state",
    "received_at",
    "first_due_at",
    "due_at",
    "extended_at",
    "extension_reason",
    "verification_method",
    "verified_at",
    "waiting_reason",
    "refusal_reason",
    "completed_at",
    "cancelled_at",
    "overdue",
    "outcome",
)


def _iso(value: dt.datetime | None) -> str:
    return value.isoformat() if value else ""


def csv_rows(rows: Iterable[tuple[str, RightsRequest]], now: dt.datetime) -> list[Sequence[str]]:
    """(account slug, request) pairs as register lines: codes, dates and pseudonymous ids
    only; no name, phone number or e-mail address (the request row holds none in clear)."""
    out: list[Sequence[str]] = [CSV_COLUMNS]
    open_values = {s.value for s in OPEN_STATES}
    for account, r in rows:
        line = [
            reference(r),
            str(r.id),
            account,
            str(r.subject_id) if r.subject_id else "",
            r.kind,
            r.source,
            r.received_via or "",
            r.state,
            _iso(r.received_at),
            _iso(r.first_due_at),
            _iso(r.due_at),
            _iso(r.extended_at),
            r.extension_reason or "",
            r.verification_method or "",
            _iso(r.verified_at),
            r.waiting_reason or "",
            r.refusal_reason or "",
            _iso(r.completed_at),
            _iso(r.cancelled_at),
            "yes" if r.state in open_values and now > r.due_at else "no",
            r.outcome or "",
        ]
        out.append([safe_cell(v) for v in line])
    return out


def to_csv(lines: Sequence[Sequence[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerows(lines)
    return buf.getvalue()
