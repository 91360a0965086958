"""Sub-processors under the SCC: clause 7.7 (a client's objection holds a change for that
client until the provider resolves it) and Art. 28(4) (each sub-processor bound by a flow-down
agreement covering every Art. 28(3) point; ``subprocessors.flowdown`` checks the gaps)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.contracts.base import _desk
from permanence.contracts.model import (
    SubProcessor,
    SubProcessorAgreement,
    SubProcessorChange,
    SubProcessorNotice,
)
from permanence.contracts.service import CLAUSES
from permanence.db import ctx_of, utcnow
from permanence.errors import Conflict, NotFound, ValidationFailed

RESOLUTIONS = ("withdrawn", "alternative", "terminated")
RESOLUTION_FR = {
    "withdrawn": "objection levée par le client",
    "alternative": "données du client tenues hors de ce sous-traitant",
    "terminated": "contrat résilié",
}


def _flowdowns(session: Session) -> dict[uuid.UUID, SubProcessorAgreement]:
    latest: dict[uuid.UUID, SubProcessorAgreement] = {}
    for a in session.scalars(
        select(SubProcessorAgreement).order_by(SubProcessorAgreement.signed_at)
    ):
        latest[a.subprocessor_id] = a
    return latest


def held_changes(session: Session) -> list[tuple[SubProcessorChange, SubProcessor]]:
    """Changes the context account objected to, not resolved: held for it (clause 7.7(a))."""
    account_id = ctx_of(session).require_account()
    rows = session.execute(
        select(SubProcessorChange, SubProcessor)
        .join(SubProcessorNotice, SubProcessorNotice.change_id == SubProcessorChange.id)
        .join(SubProcessor, SubProcessor.id == SubProcessorChange.subprocessor_id)
        .where(
            SubProcessorNotice.account_id == account_id,
            SubProcessorNotice.objected_at.is_not(None),
            SubProcessorNotice.resolved_at.is_(None),
        )
    ).all()
    return [(c, sp) for c, sp in rows]


def resolve_objection(
    session: Session, change_id: uuid.UUID, resolution: str, *, now: dt.datetime | None = None
) -> SubProcessorNotice:
    """The provider resolves the context account's objection; the change then applies to it
    ("withdrawn"), or the client's data stays off the sub-processor ("alternative"), or the
    contract ends ("terminated")."""
    _desk(session)
    account_id = ctx_of(session).require_account()
    if resolution not in RESOLUTIONS:
        raise ValidationFailed("resolution must be one of " + ", ".join(RESOLUTIONS))
    notice = session.scalars(
        select(SubProcessorNotice).where(
            SubProcessorNotice.change_id == change_id, SubProcessorNotice.account_id == account_id
        )
    ).first()
    if notice is None:
        raise NotFound("no such change")
    if notice.objected_at is None:
        raise Conflict("this client did not object to the change")
    if notice.resolved_at is not None:
        raise Conflict("this objection is already resolved")
    notice.resolved_at, notice.resolution = now or utcnow(), resolution
    audit.record(
        session,
        "subprocessor.objection_resolved",
        "subprocessor_change",
        change_id,
        details={"resolution": resolution},
    )
    return notice


def record_flowdown(
    session: Session,
    code: str,
    *,
    reference: str,
    signed_at: dt.datetime,
    covers: Sequence[str] = tuple(CLAUSES),
    document: bytes | None = None,
) -> SubProcessorAgreement:
    """Art. 28(4): the contract binding a sub-processor to the same obligations."""
    actor = _desk(session)
    sp = session.scalars(select(SubProcessor).where(SubProcessor.code == code)).first()
    if sp is None:
        raise NotFound(f"no sub-processor '{code}'")
    if not reference.strip():
        raise ValidationFailed("the agreement needs a reference")
    if signed_at.tzinfo is None:
        raise ValidationFailed("the signature date needs a time zone")
    unknown = sorted(set(covers) - set(CLAUSES))
    if unknown:
        raise ValidationFailed(f"unknown Art. 28(3) point(s): {', '.join(unknown)} (a-h)")
    agreement = SubProcessorAgreement(
        subprocessor_id=sp.id,
        reference=reference.strip()[:120],
        signed_at=signed_at,
        covers=json.dumps(sorted(set(covers))),
        sha256=hashlib.sha256(document).hexdigest() if document is not None else None,
        recorded_by=actor,
    )
    session.add(agreement)
    session.flush()
    audit.record(session, "subprocessor.flowdown", "subprocessor", sp.id, details={"code": code})
    return agreement


def flowdown_gaps(session: Session) -> list[str]:
    """Active sub-processors without an agreement covering every Art. 28(3) point."""
    flows = _flowdowns(session)
    gaps = []
    for sp in session.scalars(
        select(SubProcessor).where(SubProcessor.status == "active").order_by(SubProcessor.code)
    ):
        flow = flows.get(sp.id)
        if flow is None:
            gaps.append(f"{sp.code}: no flow-down agreement recorded (Art. 28(4))")
            continue
        missing = sorted(set(CLAUSES) - set(json.loads(flow.covers)))
        if missing:
            gaps.append(
                f"{sp.code}: agreement {flow.reference} misses point(s) {', '.join(missing)}"
            )
    return gaps
