"""Executing a verified request: each kind goes to its right's module; legal holds stop an
erasure (Art. 17(3)(e))."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.crypto.keyring import Keyring
from permanence.db import ctx_of, utcnow
from permanence.errors import Conflict
from permanence.retention.model import LegalHold
from permanence.rights import package, texts
from permanence.rights.base import EXECUTORS, Outbox, _check_role, _open_request, _subject
from permanence.rights.decisions import Refusal, _close_refused
from permanence.rights.erasure import _erase
from permanence.rights.letters import _contact, tell_requester
from permanence.rights.lookup import records_of
from permanence.rights.model import Kind, LetterKind, RightsRequest, State
from permanence.rights.rectification import _rectify
from permanence.rights.restriction import _object, _restrict
from permanence.subjects.model import Caller


@dataclass
class Executed:
    request: RightsRequest
    letter: str
    channel: str
    outcome: dict[str, Any]
    download_token: str | None = None  # the requester's link (in the letter)
    controller_token: str | None = None  # the client's own link (API, OpenDSR)
    download_expires_at: dt.datetime | None = None
    certificate: dict[str, Any] | None = None
    files_to_delete: list[tuple[str, str]] = field(default_factory=list)  # (store, key)


def execute(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    request_id: uuid.UUID,
    *,
    now: dt.datetime | None = None,
) -> Executed:
    """Carry the request out (the controller's decision to grant it). The requester must be
    verified. Files to remove are returned: delete them after the commit (``run_execute``)."""
    _check_role(session, EXECUTORS, "carry out a rights request")
    req = _open_request(session, request_id)
    if req.verified_at is None or req.state != State.VERIFIED.value:
        raise Conflict("verify the requester's identity before answering the request")
    now = now or utcnow()
    caller = _subject(session, req)
    result = Executed(req, "", "", {})
    contact: tuple[str | None, str | None] | None = None
    kind = Kind(req.kind)
    if caller is None:
        result.outcome = {"records": 0, "no_data": True}
    elif kind in (Kind.ACCESS, Kind.PORTABILITY):
        built = package.build(
            session, keyring, outbox, req, caller, portability=kind is Kind.PORTABILITY, now=now
        )
        result.outcome = built.counts
        result.download_token, result.download_expires_at = built.token, built.expires_at
        result.controller_token = built.controller_token
    elif kind is Kind.RECTIFICATION:
        result.outcome = _rectify(session, keyring, req, caller, now)
    elif kind is Kind.RESTRICTION:
        result.outcome = _restrict(session, caller, now)
    elif kind is Kind.OBJECTION:
        result.outcome, result.files_to_delete = _object(session, req, caller, now)
    else:
        held = _holds(session, caller)
        if held:
            refusal = Refusal(
                reason="legal_hold",
                explanation="Une obligation de conservation s'applique à ces données.",
                cnil_complaint_informed=True,
                judicial_remedy_informed=True,
            )
            req_, letter, channel = _close_refused(session, keyring, outbox, req, refusal, now)
            req.outcome = json.dumps({"refused": "legal_hold", "holds": held})
            return Executed(req_, letter, channel, {"refused": "legal_hold", "holds": held})
        contact = _contact(session, keyring, caller)  # read before the key is destroyed
        result.outcome, result.files_to_delete, result.certificate = _erase(
            session, keyring, req, caller, now
        )
    link = (
        f"{outbox.base_url}/api/v1/rights/downloads/{result.download_token}"
        if result.download_token
        else None
    )
    req.state, req.completed_at = State.COMPLETED.value, now
    req.decided_by = ctx_of(session).actor_id
    req.outcome = json.dumps(result.outcome, sort_keys=True)
    result.letter = texts.completed_letter(req.kind, link)
    result.channel = tell_requester(
        session, keyring, outbox, req, result.letter, contact=contact, kind=LetterKind.COMPLETED
    )
    if kind is Kind.ERASURE:
        # What the requester gave goes with the rest: the request keeps codes and dates only.
        req.requester_sealed = req.details_sealed = None
    audit.record(
        session,
        "rights.execute",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={
            "kind": req.kind,
            **{k: v for k, v in result.outcome.items() if isinstance(v, int)},
        },
    )
    return result


def run_execute(rt: Any, outbox: Outbox, ctx: Any, request_id: uuid.UUID) -> Executed:
    """``execute`` in its own transaction, then the files it freed are deleted (after the
    commit: a rollback must not leave rows whose files are gone)."""
    with rt.db.session(ctx) as s:
        done = execute(s, rt.keyring, outbox, request_id)
    if done.certificate is not None:  # an erasure: no copy of the destroyed key left behind
        rt.db.shred_residue()
    for store, key in done.files_to_delete:
        (outbox.recordings if store == "recordings" else outbox.files).delete(key)
    return done


def holds_on(session: Session, caller: Caller) -> int:
    """Active legal holds covering the subject (what would stop an erasure)."""
    return _holds(session, caller)


def _holds(session: Session, caller: Caller) -> int:
    """Active legal holds covering the subject: the whole account, the caller, or one of the
    caller's records (Art. 17(3)(e))."""
    holds = session.scalars(
        select(LegalHold).where(
            LegalHold.account_id == caller.account_id, LegalHold.released_at.is_(None)
        )
    ).all()
    if not holds:
        return 0
    recs = records_of(session, caller)
    ids = {
        "messages": {m.id for m in recs.messages},
        "appointments": {a.id for a in recs.appointments},
        "calls": {c.id for c in recs.calls},
        "recordings": {r.id for r in recs.recordings},
        "consents": {c.id for c in recs.consents},
    }
    n = 0
    for h in holds:
        account_wide = h.caller_id is None and h.record_kind is None
        on_record = bool(h.record_kind) and h.record_id in ids.get(h.record_kind or "", set())
        if account_wide or h.caller_id == caller.id or on_record:
            n += 1
    return n
