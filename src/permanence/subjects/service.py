"""Data subjects: registering a caller with sealed identifiers, and finding one by blind index.

A lookup computes the truncated index of the normalised value, fetches the few candidate rows
sharing it (by design more than one, at scale), opens only those, and keeps exact matches.
Nothing ever decrypts a whole table.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.crypto import normalize
from permanence.crypto.cipher import SubjectCipher
from permanence.crypto.keyring import Keyring
from permanence.db import ctx_of, utcnow
from permanence.errors import NotFound, PermissionDenied, ValidationFailed
from permanence.needtoknow.service import require_assigned
from permanence.staff.training import require_trained
from permanence.subjects.model import Caller

TABLE = "callers"
# The blind-index column name of the hashed e-mail (OpenDSR identity_format sha256).
EMAIL_SHA256 = "email_sha256"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def email_sha256(normalised_email: str) -> str:
    """The SHA-256 (lowercase hex) of a normalised e-mail, as a controller hashes it."""
    return hashlib.sha256(normalised_email.encode()).hexdigest()


@dataclass(frozen=True)
class Identity:
    """What identifies a caller. Every part is optional: a caller may give only a number."""

    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    email: str | None = None

    @property
    def full_name(self) -> str | None:
        parts = [p for p in (self.first_name, self.last_name) if p]
        return " ".join(parts) if parts else None


def check_account(session: Session, account_id: uuid.UUID) -> None:
    """Object-level check: the context acts for this account, or the object does not exist."""
    ctx = ctx_of(session)
    if ctx.account_id != account_id:
        raise NotFound("no such record")


def _seal_identity(
    session: Session, keyring: Keyring, caller: Caller, cipher: SubjectCipher, ident: Identity
) -> None:
    account_id = caller.account_id
    if ident.phone:
        e164, caller.phone_bidx = keyring.phone_index(session, account_id, TABLE, ident.phone)
        caller.phone_sealed = cipher.seal_text(TABLE, "phone", caller.id, e164)
    else:
        caller.phone_bidx = caller.phone_sealed = None
    if ident.email:
        e = normalize.email(ident.email)
        caller.email_bidx = keyring.index(session, account_id, TABLE, "email", e)
        caller.email_sha256_bidx = keyring.index(
            session, account_id, TABLE, EMAIL_SHA256, email_sha256(e)
        )
        caller.email_sealed = cipher.seal_text(TABLE, "email", caller.id, e)
    else:
        caller.email_bidx = caller.email_sha256_bidx = caller.email_sealed = None
    full = ident.full_name
    if full:
        caller.name_bidx = keyring.index(session, account_id, TABLE, "name", normalize.name(full))
        caller.name_sealed = cipher.seal_json(
            TABLE, "name", caller.id, {"first": ident.first_name, "last": ident.last_name}
        )
    else:
        caller.name_bidx = caller.name_sealed = None


def register(session: Session, keyring: Keyring, ident: Identity) -> tuple[Caller, SubjectCipher]:
    """A new data subject with its own data key."""
    ctx = ctx_of(session)
    account_id = ctx.require_account()
    caller = Caller(id=uuid.uuid4(), account_id=account_id)
    cipher = keyring.create_subject_key(session, account_id, caller.id)
    _seal_identity(session, keyring, caller, cipher, ident)
    session.add(caller)
    session.flush()
    audit.record(session, "subject.create", "caller", caller.id, subject_id=caller.id)
    return caller, cipher


def update_identity(session: Session, keyring: Keyring, caller: Caller, ident: Identity) -> None:
    check_account(session, caller.account_id)
    cipher = keyring.cipher(session, caller.account_id, caller.id)
    _seal_identity(session, keyring, caller, cipher, ident)
    caller.updated_at = utcnow()
    session.flush()
    audit.record(session, "subject.update", "caller", caller.id, subject_id=caller.id)


def get(session: Session, caller_id: uuid.UUID) -> Caller:
    ctx = ctx_of(session)
    caller = session.get(Caller, caller_id)
    if caller is None or caller.account_id != ctx.account_id:
        raise NotFound("no such caller")
    return caller


def identity(
    session: Session, keyring: Keyring, caller: Caller, *, audited: bool = True
) -> Identity:
    """Open a caller's identifiers. A read of personal data: audited with the context's reason."""
    check_account(session, caller.account_id)
    ctx = ctx_of(session)
    require_trained(session, ctx)
    if caller.restricted_at is not None and ctx.role.value == "operator":
        raise PermissionDenied("processing of this caller's data is restricted (Art. 18)")
    require_assigned(session, caller.account_id)
    ident = _opened(caller, keyring.cipher(session, caller.account_id, caller.id))
    if audited:
        audit.record(session, "subject.read", "caller", caller.id, subject_id=caller.id)
    return ident


def _candidates(session: Session, account_id: uuid.UUID, column: str, bidx: int) -> list[Caller]:
    col = {
        "phone": Caller.phone_bidx,
        "email": Caller.email_bidx,
        "name": Caller.name_bidx,
        EMAIL_SHA256: Caller.email_sha256_bidx,
    }[column]
    return list(
        session.scalars(select(Caller).where(Caller.account_id == account_id, col == bidx)).all()
    )


def find(
    session: Session,
    keyring: Keyring,
    *,
    phone: str | None = None,
    email: str | None = None,
    name: str | None = None,
    email_sha256: str | None = None,
) -> list[Caller]:
    """Callers of the context's account matching every identifier given (exact, normalised).
    ``email_sha256``: the SHA-256 (hex) of the normalised e-mail, instead of the e-mail."""
    account_id = ctx_of(session).require_account()
    given = {
        k: v
        for k, v in {
            "phone": phone,
            "email": email,
            "name": name,
            EMAIL_SHA256: email_sha256,
        }.items()
        if v
    }
    if not given:
        raise ValidationFailed("give a phone number, an e-mail address or a name to search for")
    if email_sha256 is not None:
        if not _HEX64.fullmatch(email_sha256.strip().lower()):
            raise ValidationFailed("a hashed e-mail is the 64 hexadecimal digits of its SHA-256")
        _index_hashed_emails(session, keyring, account_id)
    wanted: dict[str, str] = {}
    first_col, first_bidx = "", 0
    for column, raw in given.items():
        if column == "phone":
            value = normalize.phone_e164(raw, keyring.region)
        elif column == "email":
            value = normalize.email(raw)
        elif column == EMAIL_SHA256:
            value = raw.strip().lower()
        else:
            value = normalize.name(raw)
        wanted[column] = value
        if not first_col:
            first_col = column
            first_bidx = keyring.index(session, account_id, TABLE, column, value)
    matches: list[Caller] = []
    for cand in _candidates(session, account_id, first_col, first_bidx):
        cipher = keyring.cipher(session, account_id, cand.id)
        if _matches(cand, cipher, wanted):
            matches.append(cand)
    audit.record(
        session,
        "subject.lookup",
        "caller",
        details={"by": "+".join(sorted(given)), "found": len(matches)},
    )
    return matches


def _index_hashed_emails(session: Session, keyring: Keyring, account_id: uuid.UUID) -> None:
    """Callers registered before the hashed-e-mail index (migration 0087) get it on the first
    hashed lookup of their account: each opened once, then found by index like the others."""
    missing = session.scalars(
        select(Caller).where(
            Caller.account_id == account_id,
            Caller.email_sealed.is_not(None),
            Caller.email_sha256_bidx.is_(None),
        )
    ).all()
    for caller in missing:
        cipher = keyring.cipher(session, account_id, caller.id)
        email = cipher.open_text(TABLE, "email", caller.id, caller.email_sealed or b"")
        caller.email_sha256_bidx = keyring.index(
            session, account_id, TABLE, EMAIL_SHA256, email_sha256(email)
        )
    if missing:
        session.flush()


def _opened(caller: Caller, cipher: SubjectCipher) -> Identity:
    """The caller's sealed identifiers, opened (no check, no audit: callers of this do both)."""
    name = (
        cipher.open_json(TABLE, "name", caller.id, caller.name_sealed) if caller.name_sealed else {}
    )
    return Identity(
        first_name=name.get("first"),
        last_name=name.get("last"),
        phone=cipher.open_text(TABLE, "phone", caller.id, caller.phone_sealed)
        if caller.phone_sealed
        else None,
        email=cipher.open_text(TABLE, "email", caller.id, caller.email_sealed)
        if caller.email_sealed
        else None,
    )


def _matches(caller: Caller, cipher: SubjectCipher, wanted: dict[str, str]) -> bool:
    """Whether the candidate's identifiers equal every wanted (normalised) value."""
    ident = _opened(caller, cipher)
    stored = {
        "phone": ident.phone,  # sealed in E.164 already
        "email": ident.email,  # sealed normalised already
        "name": normalize.name(ident.full_name) if ident.full_name else None,
        EMAIL_SHA256: email_sha256(ident.email) if ident.email else None,
    }
    return all(stored[column] == value for column, value in wanted.items())
