"""The controller's decisions short of execution: refusal (Art. 12(4)/(5)) and cancellation."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.crypto.keyring import Keyring
from permanence.db import ctx_of, utcnow
from permanence.errors import Conflict, ValidationFailed
from permanence.rights import texts
from permanence.rights.base import (
    CONTROLLER,
    EXECUTORS,
    MAX_TEXT,
    MIN_JUSTIFICATION,
    Outbox,
    _check_role,
    _open_request,
    _set_details,
    get,
)
from permanence.rights.letters import tell_requester
from permanence.rights.model import OPEN_STATES, LetterKind, RightsRequest, State


@dataclass(frozen=True)
class Refusal:
    reason: str
    explanation: str
    cnil_complaint_informed: bool
    judicial_remedy_informed: bool
    justification: str | None = None


def refuse(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    request_id: uuid.UUID,
    refusal: Refusal,
    *,
    now: dt.datetime | None = None,
) -> tuple[RightsRequest, str, str]:
    """Refuse (Art. 12(4)): the reasons, the right to complain to the CNIL and the right to a
    judicial remedy are all required. Refusing as unfounded or excessive (Art. 12(5)) needs a
    written justification: the burden of proof is on the controller."""
    _check_role(session, EXECUTORS, "refuse a rights request")
    req = _open_request(session, request_id)
    _refuse(session, keyring, req, refusal)
    return _close_refused(session, keyring, outbox, req, refusal, now)


def _refuse(session: Session, keyring: Keyring, req: RightsRequest, refusal: Refusal) -> None:
    problems = []
    if refusal.reason not in texts.REFUSAL_REASONS_FR:
        problems.append("reason: one of " + ", ".join(sorted(texts.REFUSAL_REASONS_FR)))
    if not refusal.explanation.strip():
        problems.append("explanation: the reasons must be explained to the requester")
    if len(refusal.explanation) > MAX_TEXT:
        problems.append(f"explanation: at most {MAX_TEXT} characters")
    if not refusal.cnil_complaint_informed:
        problems.append("cnil_complaint_informed: the requester must be told of the CNIL")
    if not refusal.judicial_remedy_informed:
        problems.append("judicial_remedy_informed: the requester must be told of the courts")
    if refusal.reason in texts.EXCESSIVE_REASONS and (
        not refusal.justification or len(refusal.justification.strip()) < MIN_JUSTIFICATION
    ):
        problems.append(
            "justification: refusing as unfounded or excessive must be justified "
            f"(at least {MIN_JUSTIFICATION} characters)"
        )
    if problems:
        raise ValidationFailed("the refusal is not complete", problems)


def _close_refused(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    req: RightsRequest,
    refusal: Refusal,
    now: dt.datetime | None,
) -> tuple[RightsRequest, str, str]:
    now = now or utcnow()
    _set_details(
        keyring,
        req,
        refusal={"explanation": refusal.explanation, "justification": refusal.justification},
    )
    req.state, req.refusal_reason, req.completed_at = State.REFUSED.value, refusal.reason, now
    req.decided_by = ctx_of(session).actor_id
    letter = texts.refusal_letter(req.kind, refusal.reason, refusal.explanation.strip())
    channel = tell_requester(session, keyring, outbox, req, letter, kind=LetterKind.REFUSAL)
    audit.record(
        session,
        "rights.refuse",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={"reason": refusal.reason, "excessive_flag": req.possibly_excessive},
    )
    return req, letter, channel


def cancel(session: Session, request_id: uuid.UUID, *, now: dt.datetime | None = None) -> None:
    """Withdrawn by the requester or the controller: only while still pending."""
    _check_role(session, CONTROLLER, "cancel a rights request")
    req = get(session, request_id)
    if req.state not in {s.value for s in OPEN_STATES}:
        raise Conflict(f"the request is {req.state}: it can no longer be cancelled")
    req.state, req.cancelled_at = State.CANCELLED.value, now or utcnow()
    audit.record(session, "rights.cancel", "rights_request", req.id, subject_id=req.subject_id)
