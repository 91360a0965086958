"""Consent: recorded with everything that proves it (Art. 7(1)), withdrawn in one action
(Art. 7(3)); a purpose that rests on consent cannot be used without an active one."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.service import mandate_by_id
from permanence.audit import service as audit
from permanence.calls.service import get_call
from permanence.consents.model import Consent
from permanence.db import ctx_of, utcnow
from permanence.errors import Conflict, NotFound, ValidationFailed
from permanence.mandates.purposes import Purpose

CHANNELS = frozenset({"voice", "keypress", "web"})


def needs_consent(purpose: Purpose) -> bool:
    return purpose.needs_consent


def give(
    session: Session, *, call_id: uuid.UUID, purpose: str, wording_version: str, channel: str
) -> Consent:
    """The caller consented, on this call, to the purpose's wording in this version."""
    ctx = ctx_of(session)
    account_id = ctx.require_account()
    if channel not in CHANNELS:
        raise ValidationFailed(f"channel must be one of {', '.join(sorted(CHANNELS))}")
    call = get_call(session, call_id)
    if call.caller_id is None:
        raise ValidationFailed("this call has no caller to record consent for")
    mandate_row, mandate = mandate_by_id(session, call.mandate_id)
    p = mandate.purpose(purpose) if purpose in {x.code for x in mandate.purposes} else None
    if p is None:
        raise ValidationFailed(f"purpose '{purpose}' is not in this account's mandate")
    if p.consent_wording is None:
        raise ValidationFailed(f"purpose '{purpose}' does not rest on consent")
    if wording_version != p.consent_wording.version:
        raise ValidationFailed(
            f"the consent wording of purpose '{purpose}' is version "
            f"'{p.consent_wording.version}', not '{wording_version}': read the current one"
        )
    consent = Consent(
        account_id=account_id,
        caller_id=call.caller_id,
        call_id=call.id,
        mandate_id=mandate_row.id,
        purpose=purpose,
        wording_version=wording_version,
        channel=channel,
        given_at=utcnow(),
        operator_id=ctx.actor_id,
    )
    session.add(consent)
    session.flush()
    audit.record(
        session,
        "consent.give",
        "consent",
        consent.id,
        subject_id=call.caller_id,
        details={"purpose": purpose, "wording": wording_version, "channel": channel},
    )
    return consent


def withdraw(session: Session, consent_id: uuid.UUID, *, channel: str) -> Consent:
    """One action; processing under it stops now, earlier processing stays lawful."""
    if channel not in CHANNELS:
        raise ValidationFailed(f"channel must be one of {', '.join(sorted(CHANNELS))}")
    consent = session.get(Consent, consent_id)
    if consent is None or consent.account_id != ctx_of(session).account_id:
        raise NotFound("no such consent")
    if consent.withdrawn_at is not None:
        raise Conflict("this consent was already withdrawn")
    consent.withdrawn_at = utcnow()
    consent.withdrawn_channel = channel
    audit.record(
        session,
        "consent.withdraw",
        "consent",
        consent.id,
        subject_id=consent.caller_id,
        details={"purpose": consent.purpose, "channel": channel},
    )
    return consent


def active(session: Session, caller_id: uuid.UUID, purpose: str) -> Consent | None:
    return session.scalars(
        select(Consent)
        .where(
            Consent.caller_id == caller_id,
            Consent.purpose == purpose,
            Consent.withdrawn_at.is_(None),
        )
        .order_by(Consent.given_at.desc())
        .limit(1)
    ).first()


def of_caller(session: Session, caller_id: uuid.UUID) -> list[Consent]:
    """The caller's consents, by caller id alone (its index: with the account too, SQLite walks
    the account's consents), once the caller is known to be of the context's account."""
    from permanence.subjects.service import get as get_caller

    get_caller(session, caller_id)  # 404 unless a caller of this account
    return list(
        session.scalars(
            select(Consent).where(Consent.caller_id == caller_id).order_by(Consent.given_at)
        )
    )
