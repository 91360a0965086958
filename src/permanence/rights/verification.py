"""Identity verification (Art. 12(6)): a code by e-mail or SMS, or a person's confirmation;
more information from the requester."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid

from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.crypto.keyring import Keyring
from permanence.db import utcnow
from permanence.errors import Conflict, ValidationFailed
from permanence.mail import Mail
from permanence.rights import texts
from permanence.rights.base import (
    CODE_TTL,
    CONFIRMED_METHODS,
    MAX_CODE_ATTEMPTS,
    SUBMITTERS,
    VERIFICATION_METHODS,
    Outbox,
    TooManyCodeAttempts,
    _check_role,
    _open,
    _open_request,
    _seal,
    _subject,
)
from permanence.rights.intake import Requester, _is_repeat, _match
from permanence.rights.letters import _contact
from permanence.rights.model import RightsRequest, State


def _code_hash(keyring: Keyring, req: RightsRequest, code: str) -> str:
    key = keyring.derived_secret("rights-code")
    return hmac.new(key, f"{req.id}|{code}".encode(), hashlib.sha256).hexdigest()


def start_verification(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    request_id: uuid.UUID,
    method: str,
    *,
    now: dt.datetime | None = None,
) -> RightsRequest:
    """Send a one-time code to the e-mail or phone *on file*, or plan a callback to the number
    on file. Only the code is sent: no name, no other data."""
    _check_role(session, SUBMITTERS, "verify a requester")
    req = _open_request(session, request_id)
    if method not in VERIFICATION_METHODS:
        raise ValidationFailed("method must be one of: " + ", ".join(VERIFICATION_METHODS))
    if req.verified_at is not None:
        raise Conflict("the requester's identity is already verified")
    caller = _subject(session, req)
    if caller is None:
        raise Conflict("no data subject is linked to this request: there is nobody to verify")
    now = now or utcnow()
    email, phone = _contact(session, keyring, caller)
    req.code_hash, req.code_expires_at = None, None
    if method == "email_code":
        if not email:
            raise Conflict("no e-mail address on file for this data subject")
        if outbox.mailer is None:
            raise Conflict("e-mail is not configured (PERMANENCE_SMTP_HOST)")
        code = f"{secrets.randbelow(10**6):06d}"
        outbox.mailer.send(Mail(to=email, subject=texts.CODE_SUBJECT, text=texts.code_text(code)))
    elif method == "sms_code":
        if not phone:
            raise Conflict("no phone number on file for this data subject")
        if outbox.sms is None:
            raise Conflict("SMS is not configured (PERMANENCE_SMS_GATEWAY_URL)")
        code = f"{secrets.randbelow(10**6):06d}"
        outbox.sms.send(phone, texts.code_text(code))
    else:
        if method == "callback" and not phone:
            raise Conflict("no phone number on file for this data subject")
        code = ""
    if code:
        req.code_hash = _code_hash(keyring, req, code)
        req.code_expires_at = now + CODE_TTL
    req.verification_method = method
    req.verification_attempts = 0
    req.state = State.VERIFYING.value
    req.waiting_reason = req.waiting_since = None
    audit.record(
        session,
        "rights.verification_start",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={"method": method},
    )
    return req


def verify(
    session: Session,
    keyring: Keyring,
    request_id: uuid.UUID,
    *,
    code: str | None = None,
    callback_confirmed: bool = False,
    now: dt.datetime | None = None,
) -> bool:
    """Check the code (constant time; expiring; limited attempts) or record that the
    callback to the number on file confirmed the requester.

    Returns False on a wrong code *after* counting the attempt: the caller must let the
    transaction commit before refusing (raising here would roll the count back).
    """
    _check_role(session, SUBMITTERS, "verify a requester")
    req = _open_request(session, request_id)
    now = now or utcnow()
    if req.state != State.VERIFYING.value or req.verification_method is None:
        raise Conflict("start the verification first")
    if req.verification_method in CONFIRMED_METHODS:
        if not callback_confirmed:
            raise ValidationFailed("confirm that the callback to the number on file succeeded")
        ok = True
    else:
        if req.verification_attempts >= MAX_CODE_ATTEMPTS:
            raise TooManyCodeAttempts("too many wrong codes: send a new code")
        if req.code_expires_at is None or now > req.code_expires_at or req.code_hash is None:
            raise Conflict("the code has expired: send a new code")
        given = (code or "").strip()
        ok = hmac.compare_digest(req.code_hash, _code_hash(keyring, req, given))
        req.verification_attempts += 1
    if ok:
        req.verified_at, req.state = now, State.VERIFIED.value
        req.code_hash = req.code_expires_at = None
    audit.record(
        session,
        "rights.verified" if ok else "rights.verify_failed",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={"method": req.verification_method, "attempts": req.verification_attempts},
    )
    return ok


def add_information(
    session: Session, keyring: Keyring, request_id: uuid.UUID, requester: Requester
) -> RightsRequest:
    """The requester gave more identifiers (after an ambiguous match): match again."""
    _check_role(session, SUBMITTERS, "complete a rights request")
    req = _open_request(session, request_id)
    given = _open(keyring, req, "requester", req.requester_sealed)
    given = {**(given if isinstance(given, dict) else {}), **requester.given()}
    req.requester_sealed = _seal(keyring, req, "requester", given)
    matches = _match(session, keyring, Requester(**given), None)
    req.match_count = len(matches)
    req.subject_id = matches[0].id if len(matches) == 1 else None
    if len(matches) > 1:
        req.state, req.waiting_reason = State.WAITING_INFO.value, "identity_ambiguous"
        req.waiting_since = req.waiting_since or utcnow()
    else:
        req.state = State.VERIFIED.value if req.verified_at else State.RECEIVED.value
        req.waiting_reason = req.waiting_since = None
        if req.subject_id is not None:
            req.possibly_excessive = _is_repeat(session, req)
    audit.record(
        session,
        "rights.information_added",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={"matches": len(matches)},
    )
    return req
