"""Request and response bodies of the API (pydantic), so /openapi.json is exact."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    error: str
    message: str
    problems: list[str] | None = None


# The error answers every /api/v1 route may give. 400, 413 and 415 come from the input checks in
# front of every route (web/inputs.py).
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 401, 403, 404, 409, 413, 415, 422, 429)
}


class LoginIn(Body):
    email: str = Field(max_length=254)
    password: str = Field(max_length=128)
    totp: str | None = Field(
        default=None,
        max_length=16,
        description="6-digit code (staff), or one of their single-use recovery codes",
    )


class ReauthIn(Body):
    password: str = Field(max_length=128)
    totp: str | None = Field(default=None, max_length=16)


class Me(BaseModel):
    id: uuid.UUID
    email: str
    display_name: str
    role: str
    account_id: uuid.UUID | None
    csrf_token: str | None = None


class AccountOut(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    kind: str
    status: str


class FormFieldOut(BaseModel):
    name: str
    label_fr: str
    label_en: str
    input_type: str
    required: bool
    max_length: int | None
    choices: list[str] | None
    special_category: bool


class PurposeOut(BaseModel):
    code: str
    label_fr: str
    label_en: str | None
    legal_basis: str
    needs_consent: bool
    consent_wording_version: str | None
    consent_wording_fr: str | None
    fields: list[FormFieldOut]


class CallIn(Body):
    dialled: str = Field(min_length=3, max_length=32, description="the number the caller dialled")
    caller_number: str | None = Field(default=None, max_length=32)


class CallOut(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    status: str
    started_at: dt.datetime
    answered_at: dt.datetime | None
    ended_at: dt.datetime | None
    notice_version: str | None
    notice_read_at: dt.datetime | None
    known_caller: bool | None = None
    # The terminal outcome (calls.outcome.OUTCOMES); null while the call goes on.
    outcome: str | None = None
    talk_s: int | None = None


class ScreenPop(BaseModel):
    call_id: uuid.UUID
    account: dict[str, Any]
    status: str
    notice: dict[str, Any]
    recording: dict[str, Any]
    purposes: list[dict[str, Any]]
    caller: dict[str, Any] | None
    caller_restricted: bool


class RecordIn(Body):
    purpose: str = Field(min_length=1, max_length=64)
    values: dict[str, str | int | float | bool | None] = Field(
        description="the purpose's fields, by name (see the purpose's form)"
    )
    confirm_undeclared: bool = Field(
        default=False,
        description="the operator confirms undeclared personal data found in free text is needed",
    )


class MessageIn(RecordIn):
    urgent: bool = False


class AppointmentIn(RecordIn):
    starts_at: dt.datetime
    ends_at: dt.datetime


class MessageOut(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    call_id: uuid.UUID | None
    caller_id: uuid.UUID
    purpose: str
    status: str
    urgent: bool
    created_at: dt.datetime
    acknowledged_at: dt.datetime | None
    fields: dict[str, Any] | None = None


class AppointmentOut(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    caller_id: uuid.UUID
    call_id: uuid.UUID | None
    purpose: str
    status: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    fields: dict[str, Any] | None = None


class MoveIn(Body):
    starts_at: dt.datetime
    ends_at: dt.datetime


class SlotOut(BaseModel):
    starts_at: dt.datetime
    ends_at: dt.datetime


class ConsentIn(Body):
    purpose: str = Field(min_length=1, max_length=64)
    wording_version: str = Field(min_length=1, max_length=64)
    channel: Literal["voice", "keypress", "web"] = "voice"


class WithdrawIn(Body):
    channel: Literal["voice", "keypress", "web"] = "voice"


class ConsentOut(BaseModel):
    id: uuid.UUID
    caller_id: uuid.UUID
    call_id: uuid.UUID | None
    purpose: str
    wording_version: str
    channel: str
    given_at: dt.datetime
    withdrawn_at: dt.datetime | None


class ApiKeyIn(Body):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(min_length=1, max_length=10)


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str
    scopes: list[str]
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    secret: str | None = Field(default=None, description="shown once, at creation")


class DeliveryOut(BaseModel):
    id: uuid.UUID
    event: str
    channel: str
    escalation_step: int | None
    status: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    delivered_at: dt.datetime | None
    viewed_at: dt.datetime | None
    acknowledged_at: dt.datetime | None
    failed_at: dt.datetime | None


class RecipientOut(BaseModel):
    channel: str
    description: str
    first_received_at: dt.datetime | None
