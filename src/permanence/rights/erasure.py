"""Erasure (Art. 17): the subject's records destroyed, the signed certificate, the journal entry
that a restore replays (docs/backup.md)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.audit.certificates import sign_document
from permanence.calls.model import Call
from permanence.consents.model import Consent
from permanence.crypto.keyring import Keyring
from permanence.db import utcnow
from permanence.delivery import service as delivery
from permanence.delivery.model import Delivery
from permanence.errors import Conflict
from permanence.messages.model import Appointment, Message
from permanence.recordings.model import Recording
from permanence.retention.model import LegalHold
from permanence.rights.model import OPEN_STATES, Download, Rectification, RightsRequest, State
from permanence.subjects import service as subjects
from permanence.subjects.model import Caller


@dataclass
class SubjectErased:
    """What ``erase_subject`` did: rows deleted per kind, notices queued, files to delete after
    the commit, whether the data key was still there to destroy."""

    counts: dict[str, int]
    notices: int
    files: list[tuple[str, str]]
    key_destroyed: bool
    caller_deleted: bool
    ledger_unlinked: int = 0  # delivery rows no longer carrying the subject's id
    requests_closed: int = 0  # the subject's other open requests, closed

    @property
    def changed(self) -> bool:
        return bool(
            any(self.counts.values())
            or self.notices
            or self.key_destroyed
            or self.caller_deleted
            or self.ledger_unlinked
            or self.requests_closed
        )


def erase_subject(
    session: Session,
    keyring: Keyring,
    account_id: uuid.UUID,
    subject_id: uuid.UUID,
    *,
    request_id: uuid.UUID | None = None,
    now: dt.datetime | None = None,
) -> SubjectErased:
    """Delete every record of one subject and destroy their key: the one code path of an
    erasure, used by the request (``_erase``) and by the replay of the journal after a
    restore (``replay_erasure``). Recipients the messages reached are told (Art. 19) and
    undelivered deliveries cancelled. Whatever is already gone is skipped, so running it again
    changes nothing."""
    a, c = account_id, subject_id
    caller = session.get(Caller, c)
    mine = caller is not None and caller.account_id == a

    def of_subject(model: Any) -> list[Any]:
        # By caller id alone where the index is on the caller id alone (messages, recordings,
        # consents, appointments, calls): with the account too, SQLite picks the account's index
        # and walks every row of the account. Only once the caller is known to be of this
        # account; otherwise (already deleted, or not ours) the pair, as before.
        if mine:
            return [model.caller_id == c]
        return [model.account_id == a, model.caller_id == c]

    notices = 0
    for message_id in session.scalars(select(Message.id).where(*of_subject(Message))).all():
        notices += len(delivery.notify_recipients(session, message_id, "erased"))
    files = [
        ("recordings", key)
        for key in session.scalars(select(Recording.storage_key).where(*of_subject(Recording)))
    ]
    # Downloads, rectifications, legal holds: indexed by (account, subject), or few per account.
    files += [
        ("files", key)
        for key in session.scalars(
            select(Download.storage_key).where(Download.account_id == a, Download.subject_id == c)
        )
    ]
    counts: dict[str, int] = {}

    def gone(name: str, stmt: Any) -> None:
        counts[name] = int(getattr(session.execute(stmt), "rowcount", 0) or 0)

    gone("downloads", delete(Download).where(Download.account_id == a, Download.subject_id == c))
    gone(
        "rectifications",
        delete(Rectification).where(Rectification.account_id == a, Rectification.caller_id == c),
    )
    gone("recordings", delete(Recording).where(*of_subject(Recording)))
    gone("consents", delete(Consent).where(*of_subject(Consent)))
    gone("appointments", delete(Appointment).where(*of_subject(Appointment)))
    gone("messages", delete(Message).where(*of_subject(Message)))
    gone("calls", delete(Call).where(*of_subject(Call)))
    gone(
        "legal_holds",
        delete(LegalHold).where(LegalHold.account_id == a, LegalHold.caller_id == c),
    )
    # Earlier requests of the subject keep their codes and dates, not what was given.
    session.execute(
        update(RightsRequest)
        .where(
            RightsRequest.account_id == a,
            RightsRequest.subject_id == c,
            (RightsRequest.requester_sealed.is_not(None))
            | (RightsRequest.details_sealed.is_not(None)),
        )
        .values(requester_sealed=None, details_sealed=None)
    )
    # The delivery ledger keeps what was sent where (and the erasure notices still to send),
    # but no longer says about whom: no row links the erased messages to the subject's id.
    unlinked = session.execute(
        update(Delivery)
        .where(Delivery.account_id == a, Delivery.subject_id == c)
        .values(subject_id=None)
    )
    closed = _close_other_requests(session, a, c, request_id, now or utcnow())
    key_destroyed = keyring.destroy_subject_key(session, a, c)
    caller_deleted = mine
    if caller is not None and caller_deleted:
        session.delete(caller)
    session.flush()
    return SubjectErased(
        counts,
        notices,
        files,
        key_destroyed,
        caller_deleted,
        ledger_unlinked=int(getattr(unlinked, "rowcount", 0) or 0),
        requests_closed=closed,
    )


def _close_other_requests(
    session: Session,
    account_id: uuid.UUID,
    subject_id: uuid.UUID,
    erasure_request: uuid.UUID | None,
    now: dt.datetime,
) -> int:
    """Close the subject's other open requests: there is nothing left to give, rectify or
    restrict. Each is cancelled with the reason (``outcome.closed = subject_erased``), audited."""
    others = session.scalars(
        select(RightsRequest).where(
            RightsRequest.account_id == account_id,
            RightsRequest.subject_id == subject_id,
            RightsRequest.state.in_([st.value for st in OPEN_STATES]),
        )
    ).all()
    closed = 0
    for other in others:
        if other.id == erasure_request:
            continue
        other.state, other.cancelled_at = State.CANCELLED.value, now
        other.code_hash = None
        other.outcome = json.dumps(
            {"closed": "subject_erased", "erasure_request": str(erasure_request or "")},
            sort_keys=True,
        )
        audit.record(
            session,
            "rights.close",
            "rights_request",
            other.id,
            subject_id=subject_id,
            details={"reason": "subject_erased"},
        )
        closed += 1
    return closed


def _erase(
    session: Session, keyring: Keyring, req: RightsRequest, caller: Caller, now: dt.datetime
) -> tuple[dict[str, Any], list[tuple[str, str]], dict[str, Any]]:
    """Crypto-shred and delete every record of the subject; journal it; sign a certificate."""
    from permanence.accounts.service import get_account
    from permanence.backup import journal

    subjects.check_account(session, caller.account_id)
    a, c = caller.account_id, caller.id
    erased = erase_subject(session, keyring, a, c, request_id=req.id, now=now)
    counts, notices, files = erased.counts, erased.notices, erased.files
    entry = journal.record(
        session,
        journal.JournalEntry(
            id=uuid.uuid4(), account_id=a, subject_id=c, request_id=req.id, erased_at=now
        ),
    )
    account = get_account(session, a)
    document: dict[str, Any] = {
        "type": "certificat_effacement",
        "account": account.slug,
        "request": str(req.id),
        "subject": str(c),
        "received_at": req.received_at.isoformat(),
        "erased_at": now.isoformat(),
        "deleted": counts,
        "subject_key_destroyed": erased.key_destroyed,
        "files_deleted": len(files),
        "recipients_notified": notices,
        "ledger_rows_unlinked": erased.ledger_unlinked,
        "other_requests_closed": erased.requests_closed,
        "journal_entry": str(entry.id),
    }
    signature, public_key = sign_document(keyring, document)
    certificate = {"certificate": document, "signature": signature, "public_key": public_key}
    req.certificate = json.dumps(certificate, sort_keys=True)
    audit.record(
        session,
        "rights.erase",
        "caller",
        c,
        subject_id=c,
        details={**counts, "notices": notices, "key_destroyed": erased.key_destroyed},
    )
    outcome: dict[str, Any] = {
        **counts,
        "notices": notices,
        "ledger_unlinked": erased.ledger_unlinked,
        "requests_closed": erased.requests_closed,
    }
    return outcome, files, certificate


def replay_erasure(session: Session, keyring: Keyring, entry: Any) -> tuple[SubjectErased, bool]:
    """Carry out again an erasure of the journal (``backup.journal.JournalEntry``) on a
    restored database: the same deletions as the request made, the key destroyed, the journal
    row put back, the request closed if the restored database still had it open. Audited when
    it changed anything (then ``applied``); running it twice changes nothing the second time."""
    from permanence.backup import journal

    if entry.subject_id is None:  # an off-boarding: contracts.offboarding.replay_offboarding
        raise Conflict("this journal entry is not the erasure of a subject")
    erased = erase_subject(
        session,
        keyring,
        entry.account_id,
        entry.subject_id,
        request_id=entry.request_id,
        now=entry.erased_at,
    )
    req = session.get(RightsRequest, entry.request_id) if entry.request_id else None
    closed = False
    if req is not None and req.account_id == entry.account_id and req.state in OPEN_STATES:
        req.state, req.completed_at = State.COMPLETED.value, entry.erased_at
        req.requester_sealed = req.details_sealed = None
        req.outcome = json.dumps({**erased.counts, "replayed": True}, sort_keys=True)
        closed = True
    inserted = journal.ensure(session, entry)
    applied = erased.changed or inserted or closed
    if applied:
        audit.record(
            session,
            "rights.erase.replay",
            "caller",
            entry.subject_id,
            subject_id=entry.subject_id,
            details={
                **erased.counts,
                "notices": erased.notices,
                "key_destroyed": erased.key_destroyed,
                "journal_entry": entry.id,
                "journal_restored": inserted,
                "request_closed": closed,
            },
        )
    return erased, applied


def certificate_html(certificate: Mapping[str, Any]) -> str:
    from permanence.render import render

    return render(
        "permanence.rights",
        "certificate.html",
        doc=certificate["certificate"],
        signature=certificate["signature"],
        public_key=certificate["public_key"],
    )
