"""Callers ask for themselves: the public page /droits/{account}.

The caller chooses a right and gives their phone number and/or e-mail address. If exactly one
caller of the account matches (blind index) and has a channel on file we can use, a one-time
code is sent there — to the e-mail or phone *on file*, never to what was typed. Whatever
happens, the answer is the same ("if we know you, a code was sent"): a row is written for an
unknown caller too, which no code can match (no enumeration). Codes are stored as keyed
hashes, expire after 15 minutes, allow 5 attempts and are used once. Asking for codes is
limited per client address and per identifier.

The request itself is only taken in when the code is confirmed: it is then received (the
clock starts at the moment the caller asked) and verified, and goes to the client and the DPO
desk like any other; access and portability results are sent as a link to the channel on file
when the request is executed (``service.execute``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.crypto import normalize
from permanence.crypto.keyring import Keyring
from permanence.db import ctx_of, utcnow
from permanence.errors import PermanenceError, ValidationFailed
from permanence.mail import Mail
from permanence.rights import service as rights
from permanence.rights import texts
from permanence.rights.model import (
    CallerCode,
    CallerThrottle,
    Kind,
    RightsRequest,
    Source,
    State,
)
from permanence.subjects import service as subjects

# Rights a caller can exercise alone on the page (rectification needs the details: by phone).
PUBLIC_KINDS = (
    Kind.ACCESS,
    Kind.PORTABILITY,
    Kind.ERASURE,
    Kind.RESTRICTION,
    Kind.OBJECTION,
)
CODE_TTL = dt.timedelta(minutes=15)
MAX_ATTEMPTS = 5
WINDOW = dt.timedelta(hours=1)
PER_ADDRESS = 10  # codes asked for per client address and hour
PER_ADDRESS_CONFIRM = 30  # codes tried per client address and hour (5 per code besides)
PER_IDENTIFIER = 3  # codes asked for per phone number or e-mail address and hour


class Throttled(PermanenceError):
    status_code = 429
    code = "too_many_attempts"


class CodeRefused(PermanenceError):
    """The code cannot be checked any more (unknown, used, expired, too many attempts)."""

    status_code = 422
    code = "code_refused"


def _keyed(keyring: Keyring, purpose: str, value: str) -> str:
    key = keyring.derived_secret("rights-caller-" + purpose)
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def _count(session: Session, key: str, limit: int, now: dt.datetime) -> None:
    row = session.get(CallerThrottle, key, with_for_update=True)
    if row is None:
        session.add(CallerThrottle(key_hash=key, count=1, window_start=now))
    elif now - row.window_start > WINDOW:
        row.count, row.window_start = 1, now
    elif row.count >= limit:
        raise Throttled("too many requests: try again later")
    else:
        row.count += 1
    session.flush()


def throttle_address(
    session: Session,
    keyring: Keyring,
    client: str | None,
    now: dt.datetime,
    *,
    what: str = "ask",
) -> None:
    if client:
        limit = PER_ADDRESS if what == "ask" else PER_ADDRESS_CONFIRM
        _count(session, _keyed(keyring, "throttle", f"address-{what}:{client}"), limit, now)


@dataclass(frozen=True)
class Asked:
    """``token`` goes back to the caller in the form (never in a URL; only its hash is kept).
    ``send`` sends the code, when there is one to send: call it after the commit, and after
    the answer (a known caller's answer must not take longer than a stranger's)."""

    token: str
    send: Callable[[], None] | None = None


def ask_code(
    session: Session,
    keyring: Keyring,
    outbox: rights.Outbox,
    *,
    kind: str,
    phone: str | None,
    email: str | None,
    client: str | None,
    now: dt.datetime | None = None,
) -> Asked:
    """Send a code to the channel on file of the one caller matching, if any; the same answer
    otherwise. Throttled per address and per identifier before anything is looked up."""
    account_id = ctx_of(session).require_account()
    now = now or utcnow()
    phone, email = (phone or "").strip() or None, (email or "").strip() or None
    problems = []
    if kind not in {k.value for k in PUBLIC_KINDS}:
        problems.append("kind: choose the right you wish to exercise")
    if not phone and not email:
        problems.append("give your phone number or your e-mail address")
    if problems:
        raise ValidationFailed("the request is not complete", problems)
    throttle_address(session, keyring, client, now)
    wanted: dict[str, str] = {}
    if phone:
        wanted["phone"] = normalize.phone_e164(phone, keyring.region)
    if email:
        wanted["email"] = normalize.email(email)
    for name, value in sorted(wanted.items()):
        _count(session, _keyed(keyring, "throttle", f"{name}:{value}"), PER_IDENTIFIER, now)
    matches = subjects.find(session, keyring, phone=phone, email=email)
    channel: str | None = None
    code = f"{secrets.randbelow(10**6):06d}"
    subject_id = None
    send: Callable[[], None] | None = None
    if len(matches) == 1:
        on_email, on_phone = rights.contact_on_file(session, keyring, matches[0])
        mailer, sms = outbox.mailer, outbox.sms
        if on_email and mailer is not None:
            mail = Mail(to=on_email, subject=texts.CODE_SUBJECT, text=texts.code_text(code))
            channel, send = "email", lambda: mailer.send(mail)
        elif on_phone and sms is not None:
            number, text = on_phone, texts.code_text(code)
            channel, send = "sms", lambda: sms.send(number, text)
        if channel is not None:
            subject_id = matches[0].id
    token = secrets.token_urlsafe(32)
    # Unknown caller: the hash of a code nobody was sent (so nothing can match).
    kept = code if channel else secrets.token_hex()
    session.add(
        CallerCode(
            token_hash=hashlib.sha256(token.encode()).hexdigest(),
            account_id=account_id,
            kind=kind,
            scope="recording" if kind == Kind.OBJECTION.value else None,
            subject_id=subject_id,
            channel=channel,
            code_hash=_keyed(keyring, "code", f"{token}|{kept}"),
            attempts=0,
            created_at=now,
            expires_at=now + CODE_TTL,
        )
    )
    audit.record(
        session,
        "rights.caller_code",
        "rights_caller_code",
        subject_id=subject_id,
        details={"kind": kind, "channel": channel or "none"},
    )
    return Asked(token, send)


def confirm(
    session: Session,
    keyring: Keyring,
    *,
    token: str,
    code: str,
    client: str | None,
    now: dt.datetime | None = None,
) -> RightsRequest | None:
    """Check the code; on success take the request in, verified (received when the caller
    asked). Returns None on a wrong code *after* counting the attempt (let it commit)."""
    account_id = ctx_of(session).require_account()
    now = now or utcnow()
    throttle_address(session, keyring, client, now, what="confirm")
    row = session.get(CallerCode, hashlib.sha256(token.encode()).hexdigest())
    if row is None or row.account_id != account_id or row.used_at is not None:
        raise CodeRefused("this code can no longer be used: ask for a new one")
    if now > row.expires_at:
        raise CodeRefused("this code has expired: ask for a new one")
    if row.attempts >= MAX_ATTEMPTS:
        raise CodeRefused("too many wrong codes: ask for a new one")
    row.attempts += 1
    expected = _keyed(keyring, "code", f"{token}|{code.strip()}")
    ok = hmac.compare_digest(row.code_hash, expected) and row.subject_id is not None
    if not ok:
        audit.record(
            session, "rights.caller_code_failed", "rights_caller_code", details={"kind": row.kind}
        )
        return None
    assert row.subject_id is not None
    row.used_at = now
    req = rights.submit(
        session,
        keyring,
        rights.Intake(
            kind=Kind(row.kind),
            requester=rights.Requester(),
            source=Source.CALLER,
            caller_id=row.subject_id,
            scope=row.scope,
            received_at=row.created_at,
            received_via="web",
        ),
        now=now,
    )
    if req.state == State.RECEIVED.value:
        req.state, req.verified_at = State.VERIFIED.value, now
        req.verification_method = "email_code" if row.channel == "email" else "sms_code"
        audit.record(
            session,
            "rights.verified",
            "rights_request",
            req.id,
            subject_id=req.subject_id,
            details={"method": req.verification_method, "attempts": row.attempts},
        )
    row.request_id = req.id
    return req


def sweep(session: Session, now: dt.datetime) -> int:
    """Delete the account's codes past their expiry (used or not): the request, if any, keeps
    its own record."""
    account_id = ctx_of(session).require_account()
    gone = session.execute(
        delete(CallerCode).where(CallerCode.account_id == account_id, CallerCode.expires_at < now)
    )
    return int(getattr(gone, "rowcount", 0) or 0)
