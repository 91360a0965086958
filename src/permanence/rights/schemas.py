"""The bodies of the rights API (requests and answers) and their mapping from the model."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from permanence.rights import clock
from permanence.rights import service as rights
from permanence.rights.model import OPEN_STATES, Kind, RightsRequest


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequesterIn(_In):
    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, max_length=200)


class RecordChangeIn(_In):
    kind: Literal["message", "appointment"]
    id: uuid.UUID
    fields: dict[str, Any]


class IdentityChangeIn(_In):
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)


class ChangesIn(_In):
    identity: IdentityChangeIn | None = None
    records: list[RecordChangeIn] = Field(default_factory=list, max_length=100)


def _changes(c: ChangesIn | None) -> dict[str, Any] | None:
    if c is None:
        return None
    out: dict[str, Any] = {}
    if c.identity is not None:
        out["identity"] = c.identity.model_dump(exclude_unset=True)
    if c.records:
        out["records"] = [r.model_dump(mode="json") for r in c.records]
    return out or None


class RightsRequestIn(_In):
    kind: Kind
    requester: RequesterIn = Field(default_factory=RequesterIn)
    caller_id: uuid.UUID | None = None
    scope: str | None = Field(default=None, max_length=64)
    changes: ChangesIn | None = None
    statement: str | None = Field(default=None, max_length=2000)
    verified_by_controller: bool = False


class RightsRequestOut(BaseModel):
    id: uuid.UUID
    kind: str
    source: str
    state: str
    received_at: dt.datetime
    first_due_at: dt.datetime
    due_at: dt.datetime
    due_date: dt.date
    days_left: int
    overdue: bool
    extended: bool
    extension_reason: str | None
    waiting_reason: str | None
    verified: bool
    verification_method: str | None
    possibly_excessive: bool
    subject_linked: bool
    match_count: int
    scope: str | None
    refusal_reason: str | None
    completed_at: dt.datetime | None
    restriction_lifted_at: dt.datetime | None
    outcome: dict[str, Any] | None
    records: dict[str, int] | None = None


class LetterOut(BaseModel):
    request: RightsRequestOut
    letter_fr: str
    channel: str


class SentLetterOut(BaseModel):
    """A letter sent to the requester (or to post): kind, channel, outcome, text."""

    kind: str  # received | extension | waiting | refusal | completed | restriction_lift
    channel: str  # email | sms | letter | callback
    status: str  # sent | failed | to_post | callback
    sent_at: dt.datetime
    text_fr: str


class ExecutedOut(LetterOut):
    download_url: str | None = None
    download_expires_at: dt.datetime | None = None
    certificate: dict[str, Any] | None = None


class VerificationIn(_In):
    method: Literal["email_code", "sms_code", "callback", "id_seen"]


class VerifyIn(_In):
    code: str | None = Field(default=None, max_length=12)
    callback_confirmed: bool = False


class ExtendIn(_In):
    reason: str = Field(max_length=32)


class WaitIn(_In):
    reason: str = Field(max_length=32)


class RefuseIn(_In):
    reason: str = Field(max_length=32)
    explanation: str = Field(max_length=2000)
    cnil_complaint_informed: bool
    judicial_remedy_informed: bool
    justification: str | None = Field(default=None, max_length=2000)


def _out(req: RightsRequest, records: dict[str, int] | None = None) -> RightsRequestOut:
    now = dt.datetime.now(dt.UTC)
    open_ = req.state in {s.value for s in OPEN_STATES}
    return RightsRequestOut(
        id=req.id,
        kind=req.kind,
        source=req.source,
        state=req.state,
        received_at=req.received_at,
        first_due_at=req.first_due_at,
        due_at=req.due_at,
        due_date=clock.local_day(req.due_at),
        days_left=clock.days_left(req.due_at, now),
        overdue=open_ and now > req.due_at,
        extended=req.extended_at is not None,
        extension_reason=req.extension_reason,
        waiting_reason=req.waiting_reason,
        verified=req.verified_at is not None,
        verification_method=req.verification_method,
        possibly_excessive=req.possibly_excessive,
        subject_linked=req.subject_id is not None,
        match_count=req.match_count,
        scope=req.scope,
        refusal_reason=req.refusal_reason,
        completed_at=req.completed_at,
        restriction_lifted_at=req.restriction_lifted_at,
        outcome=json.loads(req.outcome) if req.outcome else None,
        records=records,
    )


def _link(outbox: rights.Outbox, token: str | None) -> str | None:
    return f"{outbox.base_url}/api/v1/rights/downloads/{token}" if token else None
