"""Signing in, sessions and API keys (OWASP ASVS 5.0 level 2, see security.md).

- Failed attempts are counted per e-mail and per client address (both hashed) and throttled
  *before* any password is hashed: after a few failures each further attempt must wait,
  doubling up to a ceiling. After PERMANENCE_SIGNIN_LOCK_THRESHOLD failures on one e-mail the
  account is locked until the link e-mailed to its owner (or an administrator) lifts it; an
  unknown e-mail is "locked" the same way, so the answer tells nothing (docs/adr/0014).
- Staff must give a TOTP code (or one of their single-use recovery codes); a code's time step
  is accepted once (no replay).
- Re-authentication before a sensitive action is throttled on a key of its own: failing it
  never slows or locks the user's sign-in.
- Sessions: 256-bit random tokens, only their hash stored, a new one at each sign-in
  (no fixation), idle and absolute timeouts; a password or MFA change revokes the user's
  other sessions (staff/credentials.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass

import pyotp
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.context import STAFF_ROLES, Role
from permanence.crypto.keyring import Keyring
from permanence.db import utcnow
from permanence.errors import (
    NotAuthenticated,
    PermanenceError,
    PermissionDenied,
    ValidationFailed,
)
from permanence.staff.model import ApiKey, AuthFailure, User, WebSession
from permanence.staff.passwords import hash_password, hash_secret, needs_rehash, verify_password
from permanence.staff.recovery import use_recovery_code
from permanence.staff.service import open_totp

IDLE_TIMEOUT = dt.timedelta(minutes=30)
ABSOLUTE_TIMEOUT = dt.timedelta(hours=12)
REAUTH_WINDOW = dt.timedelta(minutes=5)
FREE_FAILURES = 5
FAILURE_WINDOW = dt.timedelta(minutes=15)
MAX_DELAY = dt.timedelta(minutes=15)
API_KEY_PREFIX = "pmk"
SCOPES = frozenset(
    {
        "messages:read",
        "messages:write",
        "appointments:read",
        "appointments:write",
        "calendar:read",
        "rights:manage",  # data-subject requests, incl. the OpenDSR API
    }
)
# Scopes whose routes answer with personal data (decrypted message and appointment fields,
# callers' names in the calendar feed, requesters and recipients of rights requests). A key
# holding one of them is created only by a user of the account itself: staff who may not
# read the data must not be able to mint a way to it (docs/adr/0013). messages:write and
# appointments:write answer with status and times only.
PERSONAL_DATA_SCOPES = frozenset(
    {"messages:read", "appointments:read", "calendar:read", "rights:manage"}
)
# A dummy hash so that an unknown e-mail costs the same time as a wrong password: argon2id of
# "timing-equaliser-not-a-password" with the hasher's parameters (passwords.py), written out
# rather than hashed by every process at start (issue 24). Verifying costs what its parameters
# say; tests/unit/test_passwords.py checks they are the hasher's (no rehash needed).
_DUMMY_HASH = (
    "$argon2id$v=19$m=19456,t=2,p=1$KhDTnQRYap/oqg2UCsrqwQ"
    "$cfcey9zk6j8mVtaMT7Lz1/GyyTTFt9mN2nZHJrstLvs"
)


REFUSED = "e-mail, password or code not recognised"


class AccountLocked(PermanenceError):
    status_code = 423
    code = "account_locked"

    def __init__(self) -> None:
        super().__init__(
            "this account is locked after repeated failed sign-ins: follow the link sent to "
            "its e-mail address, or ask an administrator"
        )


class TooManyAttempts(PermanenceError):
    status_code = 429
    code = "too_many_attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins: try again in {retry_after} seconds")
        self.retry_after = retry_after


def _h(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def email_key(email: str) -> str:
    """The throttle (and lock) key of an e-mail address."""
    return _h(f"email:{email.strip().lower()}")


def _reauth_key(user_id: uuid.UUID) -> str:
    return _h(f"reauth:{user_id}")


def _throttle_keys(email: str, client: str | None) -> list[str]:
    keys = [email_key(email)]
    if client:
        keys.append(_h(f"client:{client}"))
    return keys


def _wait_needed(row: AuthFailure, now: dt.datetime) -> int:
    if now - row.last_at > FAILURE_WINDOW or row.count < FREE_FAILURES:
        return 0
    delay = min(dt.timedelta(seconds=2 ** (row.count - FREE_FAILURES + 1)), MAX_DELAY)
    remaining = (row.last_at + delay - now).total_seconds()
    return max(0, int(remaining + 0.999))


def _check_throttle(session: Session, keys: list[str], now: dt.datetime) -> None:
    for key in keys:
        row = session.get(AuthFailure, key)
        if row is not None and row.locked_at is not None:
            raise AccountLocked()
        if row is not None and (wait := _wait_needed(row, now)):
            raise TooManyAttempts(wait)


def _record_failure(session: Session, keys: list[str], now: dt.datetime) -> None:
    for key in keys:
        row = session.get(AuthFailure, key)
        if row is None:
            session.add(AuthFailure(key_hash=key, count=1, first_at=now, last_at=now))
        elif now - row.last_at > FAILURE_WINDOW:
            row.count, row.first_at, row.last_at = 1, now, now
        else:
            row.count += 1
            row.last_at = now
    session.flush()


def check_totp(
    session: Session, keyring: Keyring, user: User, code: str | None, now: dt.datetime
) -> bool:
    secret = open_totp(keyring, user)
    if secret is None or not code or not code.strip().isdigit():
        return False
    totp = pyotp.TOTP(secret)
    at = int(now.timestamp())
    for offset in (0, -1, 1):  # one step of clock drift either way
        step = at // totp.interval + offset
        expected = totp.at(step * totp.interval)
        if hmac.compare_digest(expected, code.strip()):
            if user.totp_last_step is not None and step <= user.totp_last_step:
                return False  # replay of a code already used
            user.totp_last_step = step
            user.mfa_enabled = True
            return True
    return False


def _second_factor(
    session: Session, keyring: Keyring, user: User, code: str | None, now: dt.datetime
) -> bool:
    """A TOTP code, or else one of the user's single-use recovery codes."""
    if check_totp(session, keyring, user, code, now):
        return True
    if code and not code.strip().isdigit():
        return use_recovery_code(session, user, code, now)
    return False


@dataclass(frozen=True)
class SignedIn:
    user: User
    token: str
    csrf_token: str


def sign_in(
    session: Session,
    keyring: Keyring,
    *,
    email: str,
    password: str,
    totp_code: str | None,
    client: str | None = None,
    now: dt.datetime | None = None,
) -> SignedIn | None:
    """Check the credentials (and TOTP for staff); open a new session.

    Returns None when refused — after recording the failure, which must commit: the caller
    raises NotAuthenticated once the unit of work is over (raising here would roll the
    failure count back and defeat the throttle).
    """
    now = now or utcnow()
    keys = _throttle_keys(email, client)
    _check_throttle(session, keys, now)
    user = session.scalars(select(User).where(User.email == email.strip().lower())).first()
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if ok and user is not None and user.active and user.role in STAFF_ROLES:
        ok = _second_factor(session, keyring, user, totp_code, now)
    if not ok or user is None or not user.active:
        _record_failure(session, keys, now)
        audit.record(session, "auth.sign_in_failed", "user", user.id if user else None)
        return None
    for key in keys:
        failure = session.get(AuthFailure, key)
        if failure is not None and failure.locked_at is None:
            session.delete(failure)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_secret(password)  # the same password: no policy check
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=_h(token),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + ABSOLUTE_TIMEOUT,
            reauth_at=now,
            csrf_token=csrf,
        )
    )
    session.flush()
    audit.record(session, "auth.sign_in", "user", user.id)
    return SignedIn(user, token, csrf)


def resolve_session(
    session: Session, token: str, now: dt.datetime | None = None
) -> tuple[User, WebSession]:
    """The user behind a session token; NotAuthenticated if unknown, idle or expired."""
    now = now or utcnow()
    ws = session.get(WebSession, _h(token))
    if ws is None:
        raise NotAuthenticated("not signed in")
    if now >= ws.expires_at or now - ws.last_seen_at > IDLE_TIMEOUT:
        raise NotAuthenticated("session expired: sign in again")
    user = session.get(User, ws.user_id)
    if user is None or not user.active:
        raise NotAuthenticated("not signed in")
    return user, ws


def needs_touch(ws: WebSession, now: dt.datetime | None = None) -> bool:
    """Whether last_seen should be written (once a minute: a write on every request would
    serialise readers on SQLite)."""
    return (now or utcnow()) - ws.last_seen_at > dt.timedelta(minutes=1)


def touch(session: Session, token: str, now: dt.datetime | None = None) -> None:
    ws = session.get(WebSession, _h(token))
    if ws is not None:
        ws.last_seen_at = now or utcnow()


def purge_expired_sessions(session: Session, now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    result = session.execute(
        delete(WebSession).where(
            (WebSession.expires_at <= now) | (WebSession.last_seen_at < now - IDLE_TIMEOUT)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def sign_out(session: Session, token: str) -> None:
    ws = session.get(WebSession, _h(token))
    if ws is not None:
        session.delete(ws)
        audit.record(session, "auth.sign_out", "user", ws.user_id)


def reauthenticate(
    session: Session,
    keyring: Keyring,
    user: User,
    ws: WebSession,
    *,
    password: str,
    totp_code: str | None,
    now: dt.datetime | None = None,
) -> bool:
    """Confirm identity again before a sensitive action (exports, erasure, key rotation).

    Returns False when refused (the failure is recorded and must commit; see sign_in)."""
    now = now or utcnow()
    keys = [_reauth_key(user.id)]  # never the sign-in's keys: see the module's docstring
    _check_throttle(session, keys, now)
    ok = verify_password(user.password_hash, password)
    if ok and user.role in STAFF_ROLES:
        ok = _second_factor(session, keyring, user, totp_code, now)
    if not ok:
        _record_failure(session, keys, now)
        return False
    ws.reauth_at = now
    audit.record(session, "auth.reauthenticated", "user", user.id)
    return True


def require_recent_auth(ws: WebSession | None, now: dt.datetime | None = None) -> None:
    now = now or utcnow()
    if ws is None or now - ws.reauth_at > REAUTH_WINDOW:
        raise PermissionDenied("confirm your password (and code) before this action")


def check_current_password(
    session: Session, user: User, password: str, now: dt.datetime | None = None
) -> bool:
    """The current password, before changing it: throttled like a re-authentication (on a
    key of its own, so failures never slow the user's sign-in). False must commit."""
    now = now or utcnow()
    keys = [_reauth_key(user.id)]
    _check_throttle(session, keys, now)
    if verify_password(user.password_hash, password):
        return True
    _record_failure(session, keys, now)
    return False


def revoke_sessions(session: Session, user_id: uuid.UUID, keep_token: str | None = None) -> int:
    """Close every session of the user but ``keep_token``'s (the one making the change).
    Other processes stop honouring them within deps.RECHECK_SECONDS (docs/adr/0006)."""
    query = delete(WebSession).where(WebSession.user_id == user_id)
    if keep_token is not None:
        query = query.where(WebSession.token_hash != _h(keep_token))
    return int(getattr(session.execute(query), "rowcount", 0) or 0)


def change_password(
    session: Session,
    user: User,
    new_password: str,
    *,
    keep_token: str | None = None,
    action: str = "auth.password_changed",
) -> None:
    """New password (checked against the policy); every session of the user but
    ``keep_token``'s is closed (they sign in again)."""
    user.password_hash = hash_password(new_password, (user.email, user.display_name))
    user.password_changed_at = utcnow()
    revoke_sessions(session, user.id, keep_token)
    audit.record(session, action, "user", user.id)


# -- API keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewApiKey:
    key: ApiKey
    secret: str  # shown once


def create_api_key(
    session: Session, account_id: uuid.UUID, *, name: str, scopes: list[str]
) -> NewApiKey:
    bad = sorted(set(scopes) - SCOPES)
    if bad or not scopes:
        raise ValidationFailed(
            f"unknown scope(s): {', '.join(bad)}" if bad else "give at least one scope",
            problems=[f"known scopes: {', '.join(sorted(SCOPES))}"],
        )
    if not name.strip() or len(name) > 100:
        raise ValidationFailed("name must be 1 to 100 characters")
    from permanence.db import ctx_of

    ctx = ctx_of(session)
    reading = sorted(set(scopes) & PERSONAL_DATA_SCOPES)
    if reading and not (
        ctx.role == Role.CLIENT
        and ctx.actor_id is not None
        and ctx.api_key_id is None
        and ctx.account_id == account_id
    ):
        raise PermissionDenied(
            "only a user of the client's own account may create a key that reads personal "
            f"data ({', '.join(reading)})"
        )
    key = ApiKey(
        id=uuid.uuid4(),
        account_id=account_id,
        name=name.strip(),
        scopes=" ".join(sorted(set(scopes))),
        created_by=ctx.actor_id,
        secret_hash="",
    )
    secret = secrets.token_urlsafe(32)
    key.secret_hash = _h(secret)
    session.add(key)
    session.flush()
    audit.record(
        session,
        "apikey.create",
        "api_key",
        key.id,
        details={"scopes": key.scopes.replace(" ", "+")},
    )
    return NewApiKey(key, f"{API_KEY_PREFIX}_{key.id.hex}_{secret}")


def resolve_api_key(session: Session, presented: str) -> ApiKey:
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        raise NotAuthenticated("API key not recognised")
    try:
        key_id = uuid.UUID(hex=parts[1])
    except ValueError:
        raise NotAuthenticated("API key not recognised") from None
    if session.get_bind().dialect.name == "postgresql":
        # api_keys is under row-level security; before its account is known, a transaction
        # may read the one key it names (policy api_key_lookup, migration 0074).
        session.execute(text("SELECT set_config('app.api_key_id', :k, true)"), {"k": str(key_id)})
    key = session.get(ApiKey, key_id)
    if (
        key is None
        or key.revoked_at is not None
        or not hmac.compare_digest(key.secret_hash, _h(parts[2]))
    ):
        raise NotAuthenticated("API key not recognised")
    return key


def list_api_keys(session: Session, account_id: uuid.UUID) -> list[ApiKey]:
    return list(
        session.scalars(
            select(ApiKey).where(ApiKey.account_id == account_id).order_by(ApiKey.created_at)
        )
    )


def revoke_api_key(session: Session, account_id: uuid.UUID, key_id: uuid.UUID) -> None:
    from permanence.errors import NotFound

    key = session.get(ApiKey, key_id)
    if key is None or key.account_id != account_id or key.revoked_at is not None:
        raise NotFound("no such API key")
    key.revoked_at = utcnow()
    audit.record(session, "apikey.revoke", "api_key", key.id)


def totp_now(secret: str) -> str:
    """The current code (used by tests and the demo helper)."""
    return pyotp.TOTP(secret).at(int(time.time()))
