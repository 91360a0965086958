"""Creating users. Sign-in, sessions and the training gate build on this (web layer)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pyotp
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.context import STAFF_ROLES, Role
from permanence.crypto.keyring import Keyring
from permanence.crypto.primitives import open_sealed, seal
from permanence.errors import Conflict, ValidationFailed
from permanence.staff.model import User
from permanence.staff.passwords import hash_password

ISSUER = "Permanence"


@dataclass(frozen=True)
class NewUser:
    user: User
    totp_uri: str | None


def _totp_aead(keyring: Keyring) -> AESGCM:
    return AESGCM(keyring.derived_secret("totp"))


def seal_totp(keyring: Keyring, user_id: uuid.UUID, secret: str) -> bytes:
    return seal(_totp_aead(keyring), secret.encode(), f"totp|{user_id}".encode())


def open_totp(keyring: Keyring, user: User) -> str | None:
    if user.totp_sealed is None:
        return None
    return open_sealed(_totp_aead(keyring), user.totp_sealed, f"totp|{user.id}".encode()).decode()


def create_user(
    session: Session,
    keyring: Keyring,
    *,
    email: str,
    display_name: str,
    role: Role,
    password: str,
    account_id: uuid.UUID | None = None,
) -> NewUser:
    """Staff get a TOTP secret at once (MFA is mandatory for them); client users may enrol."""
    email_n = email.strip().lower()
    if "@" not in email_n or len(email_n) > 254:
        raise ValidationFailed("e-mail address is not valid")
    if role == Role.CLIENT and account_id is None:
        raise ValidationFailed("a client user belongs to one client account")
    if role in STAFF_ROLES and account_id is not None:
        raise ValidationFailed("staff users serve every account: no account for them")
    if role == Role.SYSTEM:
        raise ValidationFailed("'system' is not a role a person can have")
    if session.scalar(select(func.count()).select_from(User).where(User.email == email_n)):
        raise Conflict("a user with this e-mail address already exists")
    user = User(
        id=uuid.uuid4(),
        email=email_n,
        display_name=display_name.strip(),
        role=role,
        account_id=account_id,
        password_hash=hash_password(password, (email_n, display_name)),
    )
    uri = None
    if role in STAFF_ROLES:
        secret = pyotp.random_base32()
        user.totp_sealed = seal_totp(keyring, user.id, secret)
        uri = pyotp.TOTP(secret).provisioning_uri(name=email_n, issuer_name=ISSUER)
    session.add(user)
    session.flush()
    audit.record(session, "user.create", "user", user.id, details={"role": role.value})
    return NewUser(user, uri)


def list_users(session: Session) -> list[User]:
    """Every user, staff first then client users, by role and e-mail (administration)."""
    return list(session.scalars(select(User).order_by(User.account_id.is_not(None), User.email)))
