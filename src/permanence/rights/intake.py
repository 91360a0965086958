"""Taking a rights request in (Art. 12-22): who asks, for what, matched to the subject on file;
a repeat within ``REPEAT_WINDOW`` is flagged (Art. 12(5))."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.context import Role
from permanence.crypto.keyring import Keyring
from permanence.db import ctx_of, utcnow
from permanence.errors import Conflict, PermissionDenied, ValidationFailed
from permanence.rights import clock
from permanence.rights.base import (
    MAX_TEXT,
    RECEIVED_VIA,
    REPEAT_WINDOW,
    SUBMITTERS,
    _check_role,
    _seal,
)
from permanence.rights.model import Kind, RightsRequest, Source, State
from permanence.rights.rectification import _changes_problems, _check_rectification
from permanence.subjects import service as subjects
from permanence.subjects.model import Caller

# How far in the future a controller's clock may put ``submitted_time`` (clock skew).
SUBMITTED_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Requester:
    """The identifiers a requester gives. At least one is needed."""

    phone: str | None = None
    email: str | None = None
    name: str | None = None
    # OpenDSR's hashed identity: the SHA-256 (hex) of the normalised e-mail.
    email_sha256: str | None = None
    # OpenDSR's controller_customer_id: kept with the request; no record of ours carries one,
    # so alone it finds no caller (the request then waits for an identifier we hold).
    customer_id: str | None = None

    def given(self) -> dict[str, str]:
        return {
            k: v.strip()
            for k, v in {
                "phone": self.phone,
                "email": self.email,
                "name": self.name,
                "email_sha256": self.email_sha256,
                "customer_id": self.customer_id,
            }.items()
            if v and v.strip()
        }

    def matchable(self) -> bool:
        """Whether an identifier we hold (index) is given: all but ``customer_id``."""
        return any(k != "customer_id" for k in self.given())


@dataclass(frozen=True)
class Intake:
    kind: Kind
    requester: Requester
    source: Source | None = None  # from the role when None
    caller_id: uuid.UUID | None = None  # staff on a call know the caller already
    scope: str | None = None  # objection: "recording" or a purpose code
    changes: Mapping[str, Any] | None = None  # rectification
    statement: str | None = None  # the subject's supplementary statement (Art. 16)
    verified_by_controller: bool = False
    external_id: str | None = None
    callback_urls: tuple[str, ...] = ()
    received_at: dt.datetime | None = None
    received_via: str | None = None  # one of RECEIVED_VIA
    # When the subject made the request to the controller (OpenDSR ``submitted_time``): the
    # Art. 12(3) month runs from it, not from our receipt, when it is earlier.
    submitted_at: dt.datetime | None = None


def _validate_intake(session: Session, intake: Intake) -> None:
    problems: list[str] = []
    given = intake.requester.given()
    if not given and intake.caller_id is None:
        problems.append("give the requester's phone number, e-mail address or name")
    for key, value in given.items():
        if len(value) > 320:
            problems.append(f"{key}: too long")
    if intake.kind is Kind.OBJECTION and not intake.scope:
        problems.append("scope: say what the objection is to ('recording' or a purpose code)")
    if intake.kind is Kind.RECTIFICATION and not (intake.changes or intake.statement):
        problems.append("changes or statement: say what is to be rectified")
    if intake.statement is not None and len(intake.statement) > MAX_TEXT:
        problems.append(f"statement: at most {MAX_TEXT} characters")
    if intake.changes:
        problems += _changes_problems(intake.changes)
    for url in intake.callback_urls:
        if not url.startswith("https://"):
            problems.append("status_callback_urls: only https:// URLs are accepted")
    if intake.submitted_at is not None and intake.submitted_at > utcnow() + SUBMITTED_SKEW:
        problems.append("submitted_time: in the future")
    if intake.received_via is not None and intake.received_via not in RECEIVED_VIA:
        problems.append("received_via: one of " + ", ".join(RECEIVED_VIA))
    if problems:
        raise ValidationFailed("the request is not complete", problems)
    if intake.scope and intake.scope != "recording":
        _row, mandate = _current_mandate(session)
        if intake.scope not in {p.code for p in mandate.purposes}:
            raise ValidationFailed("scope: not a purpose of the mandate, nor 'recording'")


def _current_mandate(session: Session) -> Any:
    from permanence.accounts.service import mandate_version

    return mandate_version(session, ctx_of(session).require_account())


def _match(
    session: Session, keyring: Keyring, requester: Requester, caller_id: uuid.UUID | None
) -> list[Caller]:
    if caller_id is not None:
        return [subjects.get(session, caller_id)]
    given = requester.given()
    if not requester.matchable():
        return []  # only a controller_customer_id: see ``submit``
    return subjects.find(
        session,
        keyring,
        phone=given.get("phone"),
        email=given.get("email"),
        name=given.get("name"),
        email_sha256=given.get("email_sha256"),
    )


def submit(
    session: Session, keyring: Keyring, intake: Intake, *, now: dt.datetime | None = None
) -> RightsRequest:
    """Take a request in: the clock starts at receipt; the subject is found by blind index.

    One match links the subject; several put the request on hold for more information; none
    means the answer will be that no data is held. Nothing is disclosed here.
    """
    _check_role(session, SUBMITTERS, "take a rights request in")
    ctx = ctx_of(session)
    account_id = ctx.require_account()
    _validate_intake(session, intake)
    if intake.kind is Kind.RECTIFICATION and intake.changes:
        _check_rectification(session, keyring, intake.changes, None)
    if intake.verified_by_controller and ctx.role is not Role.CLIENT:
        raise PermissionDenied("only the controller may vouch for the requester's identity")
    source = intake.source or (Source.CLIENT if ctx.role is Role.CLIENT else Source.STAFF)
    if intake.external_id is not None:
        existing = session.scalars(
            select(RightsRequest.id).where(
                RightsRequest.account_id == account_id,
                RightsRequest.external_id == intake.external_id,
            )
        ).first()
        if existing is not None:
            raise Conflict("a request with this subject_request_id already exists")
    now = now or utcnow()
    received = intake.received_at or now
    first_due = clock.due_at(min(received, intake.submitted_at or received))
    req = RightsRequest(
        id=uuid.uuid4(),
        account_id=account_id,
        external_id=intake.external_id,
        kind=intake.kind.value,
        source=source.value,
        state=State.RECEIVED.value,
        received_at=received,
        first_due_at=first_due,
        due_at=first_due,
        scope=intake.scope,
        callback_urls=json.dumps(list(intake.callback_urls)) if intake.callback_urls else None,
        created_by=ctx.actor_id,
        received_via=intake.received_via,
        verification_attempts=0,
        possibly_excessive=False,
        match_count=0,
    )
    given = intake.requester.given()
    req.requester_sealed = _seal(keyring, req, "requester", given)
    details: dict[str, Any] = {}
    if intake.changes:
        details["changes"] = dict(intake.changes)
    if intake.statement:
        details["statement"] = intake.statement
    if details:
        req.details_sealed = _seal(keyring, req, "details", details)
    matches = _match(session, keyring, intake.requester, intake.caller_id)
    req.match_count = len(matches)
    if len(matches) == 1:
        req.subject_id = matches[0].id
        req.possibly_excessive = _is_repeat(session, req)
    elif len(matches) > 1:
        req.state = State.WAITING_INFO.value
        req.waiting_reason, req.waiting_since = "identity_ambiguous", now
    elif intake.caller_id is None and not intake.requester.matchable():
        # Nothing of ours is keyed by the controller's customer id: "no data held" would be
        # a guess. The request waits for an identifier we hold (phone, e-mail, name).
        req.state = State.WAITING_INFO.value
        req.waiting_reason, req.waiting_since = "identity_not_held", now
    if intake.verified_by_controller:
        # Vouched for even while the subject is not yet found: once the identifiers are
        # completed, the request is verified (``add_information``), not asked again.
        req.verified_at, req.verification_method = now, "controller"
        if req.state == State.RECEIVED.value:
            req.state = State.VERIFIED.value
    session.add(req)
    session.flush()
    audit.record(
        session,
        "rights.receive",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={
            "kind": req.kind,
            "source": req.source,
            "matches": len(matches),
            "repeat": req.possibly_excessive,
        },
    )
    return req


def _is_repeat(session: Session, req: RightsRequest) -> bool:
    since = req.received_at - REPEAT_WINDOW
    n = session.scalar(
        select(func.count())
        .select_from(RightsRequest)
        .where(
            RightsRequest.account_id == req.account_id,
            RightsRequest.subject_id == req.subject_id,
            RightsRequest.kind == req.kind,
            RightsRequest.state != State.CANCELLED.value,
            RightsRequest.received_at >= since,
        )
    )
    return bool(n)
