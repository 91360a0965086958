"""Client accounts, their DIDs and their mandates.

The DIDs are derived from the mandate: importing a version adds the numbers it lists and
removes those it no longer lists, so routing is never configured twice.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from permanence.accounts.model import Account, AccountKind, Did, MandateVersion
from permanence.audit import service as audit
from permanence.crypto.keyring import Keyring
from permanence.db import ctx_of, switch_account
from permanence.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from permanence.mandates.base import FieldCategory, SpecialCategoryBasis
from permanence.mandates.errors import MandateInvalid
from permanence.mandates.layer2 import first_layer_problems
from permanence.mandates.mandate import Mandate
from permanence.mandates.parsing import diff_mandates, dump_mandate, parse_mandate


def create_account(
    session: Session, keyring: Keyring, *, slug: str, name: str, kind: AccountKind
) -> Account:
    """A new tenant with its own key-encryption and index keys."""
    ctx = ctx_of(session)
    if ctx.role.value not in {"admin", "system"}:
        raise PermissionDenied("only an administrator creates client accounts")
    if not slug or not slug.replace("-", "").isalnum() or slug.lower() != slug or len(slug) > 64:
        raise ValidationFailed("account slug must be lower-case letters, digits and hyphens")
    if session.scalar(select(func.count()).select_from(Account).where(Account.slug == slug)):
        raise Conflict(f"an account '{slug}' already exists")
    account = Account(id=uuid.uuid4(), slug=slug, name=name.strip(), kind=kind)
    session.add(account)
    session.flush()
    # Keys and everything else the account owns are written under its own context (RLS).
    switch_account(session, account.id)
    keyring.create_account_keys(session, account.id)
    audit.record(session, "account.create", "account", account.id, details={"kind": kind.value})
    return account


def get_account(session: Session, account_id: uuid.UUID) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound("no such account")
    return account


def account_by_slug(session: Session, slug: str) -> Account:
    account = session.scalars(select(Account).where(Account.slug == slug)).first()
    if account is None:
        raise NotFound(f"no account '{slug}'")
    return account


def list_accounts(session: Session) -> list[Account]:
    return list(session.scalars(select(Account).order_by(Account.name)).all())


def account_for_did(session: Session, number_e164: str) -> tuple[Account, Did]:
    """Routing: the dialled number selects the account (readable before any account is set)."""
    did = _did_anywhere(session, number_e164)
    if did is None:
        raise NotFound("this number is not assigned to any client account")
    return get_account(session, did.account_id), did


def _did_anywhere(session: Session, number_e164: str) -> Did | None:
    """The DID row for a number, whichever account holds it (a routing read under RLS)."""
    pg = session.get_bind().dialect.name == "postgresql"
    if pg:
        session.execute(text("SELECT set_config('app.routing', 'on', true)"))
    did = session.scalars(select(Did).where(Did.e164 == number_e164)).first()
    if pg:
        session.execute(text("SELECT set_config('app.routing', 'off', true)"))
    return did


def _canonical_json(mandate: Mandate) -> str:
    data: Any = json.loads(dump_mandate(mandate, fmt="json"))
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _check_first_layer(mandate: Mandate) -> None:
    """A new version must tell callers what the CNIL expects in the spoken first layer (stored
    versions are not re-checked on reading: the compliance check lists those that fail)."""
    problems = first_layer_problems(mandate)
    if problems:
        raise ValidationFailed("the mandate's spoken notice is incomplete", problems=problems)


def import_mandate(
    session: Session, source: str | bytes | Mapping[str, Any], *, account_id: uuid.UUID
) -> MandateVersion:
    """Validate and store a new version of the account's mandate; sync its DIDs.

    The document's ``account`` must name this account. Its ``version`` is assigned here.
    """
    ctx = ctx_of(session)
    if ctx.account_id != account_id:
        raise NotFound("no such account")
    account = get_account(session, account_id)
    try:
        mandate = parse_mandate(source)
    except MandateInvalid as exc:
        raise ValidationFailed("the mandate is not valid", problems=list(exc.problems)) from None
    _check_first_layer(mandate)
    if mandate.account != account.slug:
        raise ValidationFailed(
            f"the mandate is for account '{mandate.account}', not '{account.slug}'"
        )
    latest = session.scalar(
        select(func.max(MandateVersion.version)).where(MandateVersion.account_id == account_id)
    )
    version = (latest or 0) + 1
    mandate = mandate.model_copy(update={"version": version})
    document = _canonical_json(mandate)
    row = MandateVersion(
        account_id=account_id,
        version=version,
        document=document,
        sha256=hashlib.sha256(document.encode()).hexdigest(),
        notice_version=mandate.notice_version,
        created_by=ctx.actor_id,
    )
    session.add(row)
    session.flush()
    _sync_dids(session, account_id, list(mandate.dids))
    audit.record(
        session,
        "mandate.import",
        "mandate",
        row.id,
        details={"version": version, "sha256": row.sha256[:16]},
    )
    return row


def _sync_dids(session: Session, account_id: uuid.UUID, numbers: list[str]) -> None:
    existing = {d.e164: d for d in session.scalars(select(Did).where(Did.account_id == account_id))}
    for number in numbers:
        if number in existing:
            continue
        if _did_anywhere(session, number) is not None:
            raise Conflict(f"number {number} is already assigned to another account")
        session.add(Did(account_id=account_id, e164=number))
    gone = [d.id for n, d in existing.items() if n not in numbers]
    if gone:
        session.execute(delete(Did).where(Did.id.in_(gone)))
    session.flush()


@lru_cache(maxsize=256)
def _parse_stored(version_id: uuid.UUID, sha256: str, document: str) -> Mandate:
    return parse_mandate(document)


def _parsed(row: MandateVersion) -> Mandate:
    """Stored versions never change (a change is a new version), so parsing is cached by
    id and digest; the parsed models are frozen."""
    return _parse_stored(row.id, row.sha256, row.document)


def mandate_version(
    session: Session, account_id: uuid.UUID, version: int | None = None
) -> tuple[MandateVersion, Mandate]:
    """The given version, or the current (latest) one, parsed."""
    if ctx_of(session).account_id != account_id:
        raise NotFound("no such account")
    q = select(MandateVersion).where(MandateVersion.account_id == account_id)
    if version is not None:
        q = q.where(MandateVersion.version == version)
    row = session.scalars(q.order_by(MandateVersion.version.desc()).limit(1)).first()
    if row is None:
        raise NotFound("this account has no mandate" if version is None else "no such version")
    return row, _parsed(row)


def mandate_by_id(session: Session, mandate_id: uuid.UUID) -> tuple[MandateVersion, Mandate]:
    row = session.get(MandateVersion, mandate_id)
    if row is None or row.account_id != ctx_of(session).account_id:
        raise NotFound("no such mandate")
    return row, _parsed(row)


def export_mandate(
    session: Session,
    account_id: uuid.UUID,
    version: int | None = None,
    fmt: Literal["yaml", "json"] = "yaml",
) -> str:
    _row, mandate = mandate_version(session, account_id, version)
    return dump_mandate(mandate, fmt=fmt)


# What a client may ask to change in its mandate (codes: the audit log takes no free text).
CHANGE_TOPICS = ("purposes", "fields", "retention", "recipients", "numbers", "recording", "other")


def request_mandate_change(session: Session, topic: str) -> int:
    """A client asks its provider to change the mandate: recorded (the provider's staff see it
    in the audit log); returns the current version the request is about."""
    if topic not in CHANGE_TOPICS:
        raise ValidationFailed(f"topic must be one of: {', '.join(CHANGE_TOPICS)}")
    account_id = ctx_of(session).require_account()
    row, _mandate = mandate_version(session, account_id)
    audit.record(
        session,
        "mandate.change_requested",
        "mandate",
        row.id,
        details={"topic": topic, "version": row.version},
    )
    return row.version


def mandate_versions(session: Session, account_id: uuid.UUID) -> list[MandateVersion]:
    """Every version of the account's mandate, newest first."""
    if ctx_of(session).account_id != account_id:
        raise NotFound("no such account")
    return list(
        session.scalars(
            select(MandateVersion)
            .where(MandateVersion.account_id == account_id)
            .order_by(MandateVersion.version.desc())
        )
    )


def dids_of(session: Session, account_id: uuid.UUID) -> list[Did]:
    if ctx_of(session).account_id != account_id:
        raise NotFound("no such account")
    return list(session.scalars(select(Did).where(Did.account_id == account_id).order_by(Did.e164)))


def preview_mandate(session: Session, source: str, *, account_id: uuid.UUID) -> tuple[Mandate, str]:
    """Validate a draft against the account and diff it with the current version (nothing is
    stored): what the editor shows before saving."""
    account = get_account(session, account_id)
    try:
        draft = parse_mandate(source)
    except MandateInvalid as exc:
        raise ValidationFailed("the mandate is not valid", problems=list(exc.problems)) from None
    _check_first_layer(draft)
    if draft.account != account.slug:
        raise ValidationFailed(
            f"the mandate is for account '{draft.account}', not '{account.slug}'"
        )
    try:
        _row, current = mandate_version(session, account_id)
    except NotFound:
        return draft, ""
    # Compared at the same version number: the number is assigned on saving.
    return draft, diff_mandates(current, draft.model_copy(update={"version": current.version}))


def rotate_keys(session: Session, keyring: Keyring, account_id: uuid.UUID) -> tuple[int, int]:
    """A new key-encryption key for the account; data keys re-wrapped, data untouched."""
    if ctx_of(session).account_id != account_id:
        raise NotFound("no such account")
    version, count = keyring.rotate_account(session, account_id)
    audit.record(
        session,
        "keys.rotate",
        "account",
        account_id,
        details={"version": version, "rewrapped": count},
    )
    return version, count


def handles_health_data(account: Account, mandate: Mandate | None) -> bool:
    """Whether the account processes health data: a medical account, care under a health
    professional (Art. 9(2)(h)), or health or special-category fields in its mandate."""
    if account.kind == AccountKind.MEDICAL:
        return True
    if mandate is None:
        return False
    if any(p.special_category_basis is SpecialCategoryBasis.ART9_2_H for p in mandate.purposes):
        return True  # care under a health professional: health data (recital 35)
    return mandate.controller.health_data or any(
        f.category == FieldCategory.HEALTH or f.special_category
        for p in mandate.purposes
        for f in p.resolved_fields
    )
