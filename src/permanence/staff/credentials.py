"""Changing credentials: password change and reset, the per-account lock, MFA recovery codes
and authenticator re-enrolment (OWASP ASVS 5.0 V6; docs/adr/0014).

- A reset or unlock link carries a 256-bit random token, stored as its SHA-256, single use,
  expiring (``RESET_LIFETIME``, ``UNLOCK_LIFETIME``). Asking for a reset answers the same
  whether the address is known or not; only a known, active user gets an e-mail.
- Every change of a password or of the second factor closes the user's other sessions (ADR
  0006); an administrator's reset closes all of them and revokes the API keys the user
  created (the reset is the path for a compromised account).
- Recovery codes: ten, shown once, stored as argon2id hashes, each accepted once in place of
  a TOTP code. Generating a new set replaces the old one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

import pyotp
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account
from permanence.audit import service as audit
from permanence.context import STAFF_ROLES
from permanence.crypto.keyring import Keyring
from permanence.crypto.primitives import open_sealed, seal
from permanence.db import acting_for, utcnow
from permanence.errors import IntegrityFailure, NotFound, PermissionDenied, ValidationFailed
from permanence.staff import auth
from permanence.staff.credentials_model import AuthToken, RecoveryCode
from permanence.staff.model import ApiKey, AuthFailure, User
from permanence.staff.passwords import hash_secret, verify_password
from permanence.staff.service import ISSUER, _totp_aead, seal_totp

RESET_LIFETIME = dt.timedelta(minutes=30)
ADMIN_RESET_LIFETIME = dt.timedelta(hours=24)  # handed over by an administrator
UNLOCK_LIFETIME = dt.timedelta(hours=24)
RESET_RESEND_AFTER = dt.timedelta(minutes=1)  # one reset e-mail a minute per user at most
RECOVERY_CODE_COUNT = 10
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
INVALID_LINK = "this link is not valid: it was already used, has expired or was replaced"


def _h(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def user_id_by_email(session: Session, email: str) -> uuid.UUID:
    """The id of the user with this e-mail (the command line names users so)."""
    found = session.scalars(select(User.id).where(User.email == email.strip().lower())).first()
    if found is None:
        raise NotFound("no user with this e-mail address")
    return found


# -- single-use links --------------------------------------------------------------------------


def _issue(session: Session, user: User, purpose: str, lifetime: dt.timedelta) -> str:
    """A new link token for ``purpose``; earlier unused ones of that purpose stop working."""
    now = utcnow()
    session.execute(
        delete(AuthToken).where(
            AuthToken.user_id == user.id,
            AuthToken.purpose == purpose,
            AuthToken.used_at.is_(None),
        )
    )
    token = secrets.token_urlsafe(32)
    session.add(
        AuthToken(
            token_hash=_h(token),
            user_id=user.id,
            purpose=purpose,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return token


def _valid(session: Session, token: str, purpose: str) -> AuthToken | None:
    if not token or len(token) > 100:
        return None
    row = session.get(AuthToken, _h(token))
    if row is None or row.purpose != purpose or row.used_at is not None:
        return None
    if utcnow() >= row.expires_at:
        return None
    return row


def link_is_valid(session: Session, token: str, purpose: str) -> bool:
    """Whether a link may still be used (the page shows its form, or says why not)."""
    return _valid(session, token, purpose) is not None


def _spend(session: Session, token: str, purpose: str) -> User:
    row = _valid(session, token, purpose)
    user = session.get(User, row.user_id) if row is not None else None
    if row is None or user is None or not user.active:
        raise NotFound(INVALID_LINK)
    row.used_at = utcnow()
    return user


@dataclass(frozen=True)
class Link:
    """A link to e-mail: to whom, and its token (the caller builds the URL)."""

    email: str
    token: str


def request_reset(session: Session, email: str) -> Link | None:
    """A reset link for the active user with this e-mail, or None (unknown, inactive, or a
    link was sent less than a minute ago). The caller answers the same in every case."""
    user = session.scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None or not user.active:
        return None
    recent = session.scalars(
        select(AuthToken.created_at).where(
            AuthToken.user_id == user.id, AuthToken.purpose == "reset"
        )
    ).all()
    if any(utcnow() - at < RESET_RESEND_AFTER for at in recent):
        return None
    token = _issue(session, user, "reset", RESET_LIFETIME)
    audit.record(session, "auth.password_reset_requested", "user", user.id)
    return Link(user.email, token)


def reset_password(session: Session, token: str, new_password: str) -> User:
    """Spend a reset link: the new password (policy-checked: a weak one leaves the link
    unspent, the transaction rolls back), every session closed, the lock lifted (the link
    proves the mailbox). The second factor is unchanged: staff still give their code."""
    user = _spend(session, token, "reset")
    auth.change_password(session, user, new_password, action="auth.password_reset")
    _lift_lock(session, user)
    return user


def change_own_password(
    session: Session, user: User, *, current: str, new: str, keep_token: str | None
) -> bool:
    """The signed-in user's change, with the current password. False: the current password
    was wrong (recorded on the re-authentication throttle; must commit)."""
    if not auth.check_current_password(session, user, current):
        return False
    if verify_password(user.password_hash, new):
        raise ValidationFailed("the new password must differ from the current one")
    auth.change_password(session, user, new, keep_token=keep_token)
    return True


@dataclass(frozen=True)
class AdminReset:
    link: Link
    totp_uri: str | None  # a new authenticator, shown once to the administrator
    keys_revoked: int


def admin_reset(
    session: Session, keyring: Keyring, user_id: uuid.UUID, *, new_authenticator: bool
) -> AdminReset:
    """An administrator's reset of a staff member (lost password or authenticator, or a
    suspected compromise): the password no longer works, every session is closed, the API keys
    the user created are revoked, a reset link (valid 24 h) goes to the user; with
    ``new_authenticator`` the TOTP secret and recovery codes are replaced too."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    if user.role not in STAFF_ROLES:
        raise PermissionDenied(
            "client users reset their own password from the sign-in page (forgotten password)"
        )
    user.password_hash = hash_secret(secrets.token_urlsafe(32))  # nobody knows it
    user.password_changed_at = utcnow()
    auth.revoke_sessions(session, user.id)
    keys: list[ApiKey] = []
    # API keys are under row-level security (ADR 0013): visit each account the user may have
    # minted keys for, acting for it, so PostgreSQL shows its keys (SQLite shows them anyway).
    for account_id in list(session.scalars(select(Account.id))):
        with acting_for(session, account_id):
            for key in session.scalars(
                select(ApiKey).where(
                    ApiKey.account_id == account_id,
                    ApiKey.created_by == user.id,
                    ApiKey.revoked_at.is_(None),
                )
            ).all():
                auth.revoke_api_key(session, key.account_id, key.id)
                keys.append(key)
    uri = None
    if new_authenticator:
        secret = pyotp.random_base32()
        user.totp_sealed = seal_totp(keyring, user.id, secret)
        user.totp_last_step = None
        user.mfa_enabled = False
        session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    _lift_lock(session, user)
    token = _issue(session, user, "reset", ADMIN_RESET_LIFETIME)
    audit.record(
        session,
        "auth.password_reset_by_admin",
        "user",
        user.id,
        details={"new_authenticator": new_authenticator, "keys_revoked": len(keys)},
    )
    return AdminReset(Link(user.email, token), uri, len(keys))


# -- the per-account lock -----------------------------------------------------------------------


def lock_if_needed(session: Session, email: str, threshold: int) -> Link | None:
    """After a refused sign-in: lock the e-mail's key once it reached ``threshold`` failures.
    Returns the unlock link to e-mail when a known, active user was just locked."""
    row = session.get(AuthFailure, auth.email_key(email))
    if row is None or row.locked_at is not None or row.count < threshold:
        return None
    row.locked_at = utcnow()
    user = session.scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None or not user.active:
        return None  # the same answer as for an account (no enumeration), nobody to tell
    audit.record(session, "auth.locked", "user", user.id)
    return Link(user.email, _issue(session, user, "unlock", UNLOCK_LIFETIME))


def is_locked(session: Session, user: User) -> bool:
    row = session.get(AuthFailure, auth.email_key(user.email))
    return row is not None and row.locked_at is not None


def _lift_lock(session: Session, user: User) -> bool:
    row = session.get(AuthFailure, auth.email_key(user.email))
    if row is None:
        return False
    session.delete(row)
    return row.locked_at is not None


def unlock_with_link(session: Session, token: str) -> User:
    user = _spend(session, token, "unlock")
    _lift_lock(session, user)
    audit.record(session, "auth.unlocked", "user", user.id, details={"by": "link"})
    return user


def admin_unlock(session: Session, user_id: uuid.UUID) -> bool:
    """Lift the lock (and the failure count) of a user; False when there was no lock."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    was_locked = _lift_lock(session, user)
    session.execute(
        delete(AuthToken).where(
            AuthToken.user_id == user.id,
            AuthToken.purpose == "unlock",
            AuthToken.used_at.is_(None),
        )
    )
    if was_locked:
        audit.record(session, "auth.unlocked", "user", user.id, details={"by": "admin"})
    return was_locked


# -- recovery codes -----------------------------------------------------------------------------


def generate_recovery_codes(
    session: Session, user: User, *, keep_token: str | None = None
) -> list[str]:
    """A new set of codes (the old ones stop working), returned once; other sessions closed."""
    if user.totp_sealed is None:
        raise ValidationFailed("recovery codes stand in for an authenticator: enrol one first")
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(RecoveryCode(user_id=user.id, code_hash=hash_secret(raw)))
    auth.revoke_sessions(session, user.id, keep_token)
    session.flush()
    audit.record(session, "auth.recovery_codes_generated", "user", user.id)
    return codes


def remaining_recovery_codes(session: Session, user_id: uuid.UUID) -> int:
    return len(
        session.scalars(
            select(RecoveryCode.id).where(
                RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
            )
        ).all()
    )


# -- authenticator re-enrolment -----------------------------------------------------------------


@dataclass(frozen=True)
class PendingAuthenticator:
    secret: str  # shown to the user (typed into the app) with the URI
    uri: str
    sealed: str  # carried by the confirmation form: the secret sealed to this user


def start_enrolment(keyring: Keyring, user: User) -> PendingAuthenticator:
    """A new TOTP secret, not in force until a code from it is confirmed. Nothing is stored:
    the form carries the secret sealed (AES-GCM) to this user."""
    secret = pyotp.random_base32()
    blob = seal(_totp_aead(keyring), secret.encode(), f"totp-pending|{user.id}".encode())
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return PendingAuthenticator(secret, uri, base64.urlsafe_b64encode(blob).decode())


def _open_pending(keyring: Keyring, user: User, sealed: str) -> str:
    try:
        return open_sealed(
            _totp_aead(keyring),
            base64.urlsafe_b64decode(sealed.encode()),
            f"totp-pending|{user.id}".encode(),
        ).decode()
    except (IntegrityFailure, ValueError):
        raise ValidationFailed("this enrolment form is not valid: start again") from None


def reopen_enrolment(keyring: Keyring, user: User, sealed: str) -> PendingAuthenticator:
    """The same pending key again (after a wrong code: the user has already added it)."""
    secret = _open_pending(keyring, user, sealed)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return PendingAuthenticator(secret, uri, sealed)


def finish_enrolment(
    session: Session,
    keyring: Keyring,
    user: User,
    *,
    sealed: str,
    code: str,
    keep_token: str | None,
) -> bool:
    """Put the pending secret in force once ``code`` comes from it; other sessions closed.
    False: the code does not match (nothing changed)."""
    secret = _open_pending(keyring, user, sealed)
    totp = pyotp.TOTP(secret)
    now_step = int(utcnow().timestamp()) // totp.interval
    matched = [
        step
        for step in (now_step, now_step - 1, now_step + 1)  # one step of drift either way
        if hmac.compare_digest(totp.at(step * totp.interval), code.strip())
    ]
    if not code.strip().isdigit() or not matched:
        return False
    user.totp_sealed = seal_totp(keyring, user.id, secret)
    user.totp_last_step = matched[0]  # this code is not accepted again at sign-in
    user.mfa_enabled = True
    auth.revoke_sessions(session, user.id, keep_token)
    audit.record(session, "auth.mfa_reenrolled", "user", user.id)
    return True
