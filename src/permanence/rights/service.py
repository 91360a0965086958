"""Rights requests: intake, identity verification, the clock, lookup, and what each kind of
request does when executed. Every function takes a session opened by ``Database.session(ctx)``
(one transaction) except the ``run_*`` helpers, which also do the file work after the commit.

Who may do what: anyone serving the account may take a request in (client users; operators,
supervisors and the DPO when a caller asks on the phone, Art. 28(3)(e)) and verify the
requester. The client (the controller) decides: extends, refuses, executes. The provider's DPO
may execute, extend and refuse on the client's instruction from the DPO desk (the processor
supplies the tools, ADR 0011); the client sees every step in its portal and the audit log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from permanence.accounts.service import mandate_by_id
from permanence.audit import service as audit
from permanence.calls.model import Call
from permanence.config import Settings
from permanence.consents.model import Consent
from permanence.context import Role
from permanence.crypto.keyring import Keyring
from permanence.crypto.primitives import open_sealed, seal
from permanence.db import ctx_of, utcnow
from permanence.delivery import service as delivery
from permanence.delivery.model import Delivery, Status
from permanence.delivery.ports import SmsSender, sms_gateway_for
from permanence.errors import (
    Conflict,
    NotFound,
    PermanenceError,
    PermissionDenied,
    ValidationFailed,
)
from permanence.mail import Mail, Mailer, mailer_for
from permanence.mandates.forms import SubmissionInvalid, validate_fields
from permanence.mandates.schema import Field as MandateField
from permanence.mandates.schema import FieldCategory, FieldType
from permanence.messages import service as messages
from permanence.messages.model import Appointment, Message
from permanence.recordings.model import Recording
from permanence.recordings.storage import LocalStore, RecordingStore, store_from_settings
from permanence.retention.model import LegalHold
from permanence.rights import clock, texts
from permanence.rights.model import (
    CLOSED_STATES,
    OPEN_STATES,
    Download,
    Kind,
    Rectification,
    RightsRequest,
    Source,
    State,
)
from permanence.staff.training import require_trained
from permanence.subjects import service as subjects
from permanence.subjects.model import Caller

SUBMITTERS = frozenset({Role.CLIENT, Role.OPERATOR, Role.SUPERVISOR, Role.DPO})
CONTROLLER = frozenset({Role.CLIENT})
EXECUTORS = frozenset({Role.CLIENT, Role.DPO})
CODE_TTL = dt.timedelta(minutes=15)
MAX_CODE_ATTEMPTS = 5
DOWNLOAD_TTL = dt.timedelta(days=7)
# A request of the same kind from the same subject within this window is flagged as possibly
# excessive (Art. 12(5)): refusing it as such then needs a written justification.
REPEAT_WINDOW = dt.timedelta(days=90)
MIN_JUSTIFICATION = 20
MAX_TEXT = 2000
VERIFICATION_METHODS = ("email_code", "sms_code", "callback", "id_seen")
# Verified by a person rather than a code: a call-back to the number on file, or an identity
# document seen (in person, or a copy with a letter); the staff member confirms it.
CONFIRMED_METHODS = ("callback", "id_seen")
RECEIVED_VIA = ("phone", "email", "letter", "in_person", "web", "api")
IDENTITY_FIELDS = ("first_name", "last_name", "phone", "email")
# The caller's identity checked like a form's fields (mandates.forms): a rectified phone is a
# phone number, a name is one line of text of at most 100 characters.
_IDENTITY = FieldCategory.IDENTITY
IDENTITY_SPEC = (
    MandateField(name="first_name", type=FieldType.TEXT, category=_IDENTITY, max_length=100),
    MandateField(name="last_name", type=FieldType.TEXT, category=_IDENTITY, max_length=100),
    MandateField(name="phone", type=FieldType.PHONE, category=FieldCategory.CONTACT),
    MandateField(
        name="email", type=FieldType.EMAIL, category=FieldCategory.CONTACT, max_length=320
    ),
)


class TooManyCodeAttempts(PermanenceError):
    status_code = 429
    code = "too_many_attempts"


# -- outside effects --------------------------------------------------------------------------


@dataclass
class Outbox:
    """What the rights use cases reach outside the database: e-mail and SMS to the requester,
    the recordings store (audio for access, deletion on erasure) and the store of files made
    for requests (encrypted, deleted once downloaded or expired)."""

    mailer: Mailer | None
    sms: SmsSender | None
    recordings: RecordingStore
    files: RecordingStore
    base_url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbox:
        return cls(
            mailer=mailer_for(settings),
            sms=sms_gateway_for(settings),
            recordings=store_from_settings(settings),
            files=LocalStore(settings.data_dir / "rights"),
            base_url=settings.public_base_url.rstrip("/"),
        )


# -- sealing what the requester gave ----------------------------------------------------------


def _request_aead(keyring: Keyring) -> AESGCM:
    return AESGCM(keyring.derived_secret("rights-request"))


def _ad(req: RightsRequest, column: str) -> bytes:
    return f"rights|{req.account_id}|{req.id}|{column}".encode()


def _seal(keyring: Keyring, req: RightsRequest, column: str, value: Any) -> bytes:
    data = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return seal(_request_aead(keyring), data.encode(), _ad(req, column))


def _open(keyring: Keyring, req: RightsRequest, column: str, blob: bytes | None) -> Any:
    if blob is None:
        return {}
    return json.loads(open_sealed(_request_aead(keyring), blob, _ad(req, column)))


def _details(keyring: Keyring, req: RightsRequest) -> dict[str, Any]:
    value = _open(keyring, req, "details", req.details_sealed)
    return value if isinstance(value, dict) else {}


def details_of(keyring: Keyring, req: RightsRequest) -> dict[str, Any]:
    """What was given with the request or decided on it (changes, statement, the refusal's
    explanation), opened; empty once an erasure wiped it."""
    return _details(keyring, req)


def _set_details(keyring: Keyring, req: RightsRequest, **changes: Any) -> None:
    current = _details(keyring, req)
    current.update(changes)
    req.details_sealed = _seal(keyring, req, "details", current)


# -- intake -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Requester:
    """The identifiers a requester gives. At least one is needed."""

    phone: str | None = None
    email: str | None = None
    name: str | None = None

    def given(self) -> dict[str, str]:
        return {
            k: v.strip()
            for k, v in {"phone": self.phone, "email": self.email, "name": self.name}.items()
            if v and v.strip()
        }


@dataclass(frozen=True)
class Intake:
    kind: Kind
    requester: Requester
    source: Source | None = None  # from the role when None
    caller_id: uuid.UUID | None = None  # staff on a call know the caller already
    scope: str | None = None  # objection: "recording" or a purpose code
    changes: Mapping[str, Any] | None = None  # rectification
    statement: str | None = None  # the subject's supplementary statement (Art. 16)
    verified_by_controller: bool = False
    external_id: str | None = None
    callback_urls: tuple[str, ...] = ()
    received_at: dt.datetime | None = None
    received_via: str | None = None  # one of RECEIVED_VIA


def _check_role(session: Session, allowed: frozenset[Role], what: str) -> None:
    ctx = ctx_of(session)
    if ctx.role not in allowed and ctx.role is not Role.SYSTEM:
        raise PermissionDenied(f"your role does not allow you to {what}")
    require_trained(session, ctx)


def _validate_intake(session: Session, intake: Intake) -> None:
    problems: list[str] = []
    given = intake.requester.given()
    if not given and intake.caller_id is None:
        problems.append("give the requester's phone number, e-mail address or name")
    for key, value in given.items():
        if len(value) > 320:
            problems.append(f"{key}: too long")
    if intake.kind is Kind.OBJECTION and not intake.scope:
        problems.append("scope: say what the objection is to ('recording' or a purpose code)")
    if intake.kind is Kind.RECTIFICATION and not (intake.changes or intake.statement):
        problems.append("changes or statement: say what is to be rectified")
    if intake.statement is not None and len(intake.statement) > MAX_TEXT:
        problems.append(f"statement: at most {MAX_TEXT} characters")
    if intake.changes:
        problems += _changes_problems(intake.changes)
    for url in intake.callback_urls:
        if not url.startswith("https://"):
            problems.append("status_callback_urls: only https:// URLs are accepted")
    if intake.received_via is not None and intake.received_via not in RECEIVED_VIA:
        problems.append("received_via: one of " + ", ".join(RECEIVED_VIA))
    if problems:
        raise ValidationFailed("the request is not complete", problems)
    if intake.scope and intake.scope != "recording":
        _row, mandate = _current_mandate(session)
        if intake.scope not in {p.code for p in mandate.purposes}:
            raise ValidationFailed("scope: not a purpose of the mandate, nor 'recording'")


def _changes_problems(changes: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    unknown = set(changes) - {"identity", "records"}
    if unknown:
        problems.append("changes: only 'identity' and 'records' may be given")
    ident = changes.get("identity") or {}
    if not isinstance(ident, dict) or set(ident) - set(IDENTITY_FIELDS):
        problems.append("changes.identity: only " + ", ".join(IDENTITY_FIELDS))
    records = changes.get("records") or []
    if not isinstance(records, list):
        problems.append("changes.records: a list")
        return problems
    for i, rec in enumerate(records):
        if (
            not isinstance(rec, dict)
            or rec.get("kind") not in ("message", "appointment")
            or not isinstance(rec.get("fields"), dict)
        ):
            problems.append(
                f"changes.records[{i}]: needs kind (message or appointment), id and fields"
            )
            continue
        try:
            uuid.UUID(str(rec.get("id")))
        except ValueError:
            problems.append(f"changes.records[{i}].id: not a valid id")
    return problems


def _checked_identity(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The identity changes cleaned like a form's fields; a blank value clears that part."""
    try:
        cleaned = validate_fields(
            IDENTITY_SPEC, changes, owner="the caller's identity", code="identity"
        )
    except SubmissionInvalid as exc:
        raise ValidationFailed(
            "changes.identity: the rectified identity is not valid",
            [f"changes.identity.{e.field}: {e.message}" for e in exc.errors],
        ) from None
    return {k: cleaned.get(k) for k in changes}


def _record_of(
    session: Session, kind: str, rid: uuid.UUID, account_id: uuid.UUID
) -> Message | Appointment | None:
    rec: Message | Appointment | None = (
        session.get(Message, rid) if kind == "message" else session.get(Appointment, rid)
    )
    if rec is None or rec.account_id != account_id:
        return None
    return rec


def _checked_record(
    session: Session,
    keyring: Keyring,
    index: int,
    rec: Message | Appointment,
    fields: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, object]]:
    """The record's payload before, and after the change as a new record would be stored.

    The record's fields after the change pass the very check a new record of the same purpose
    passes (messages.validate_record: types, lengths, required fields, formats, consent, and
    the screening of free text, the subject having asked for what they wrote to be there)."""
    table = "messages" if isinstance(rec, Message) else "appointments"
    _row, mandate = mandate_by_id(session, rec.mandate_id)
    allowed = set(mandate.purpose(rec.purpose).field_names)
    outside = sorted(set(fields) - allowed)
    if outside:
        raise ValidationFailed(
            "these fields are not part of the record's purpose: " + ", ".join(outside)
        )
    cipher = keyring.cipher(session, rec.account_id, rec.caller_id)
    payload: dict[str, Any] = cipher.open_json(table, "payload", rec.id, rec.payload_sealed)
    merged = {**payload, **fields}
    try:
        cleaned = messages.validate_record(
            session, rec.caller_id, mandate, rec.purpose, merged, confirm_undeclared=True
        )
    except ValidationFailed as exc:
        raise ValidationFailed(
            f"changes.records[{index}]: the rectified record does not fit its purpose",
            list(exc.problems),
        ) from None
    return payload, cleaned


def _check_rectification(
    session: Session, keyring: Keyring, changes: Mapping[str, Any], caller: Caller | None
) -> None:
    """At intake: refuse what could never be applied, before anything is written."""
    if changes.get("identity"):
        _checked_identity(changes["identity"])
    account_id = ctx_of(session).require_account()
    for i, item in enumerate(changes.get("records") or []):
        rec = _record_of(session, item["kind"], uuid.UUID(str(item["id"])), account_id)
        if rec is not None:  # whose record it is is checked once the subject is known
            _checked_record(session, keyring, i, rec, item["fields"])


def _current_mandate(session: Session) -> Any:
    from permanence.accounts.service import mandate_version

    return mandate_version(session, ctx_of(session).require_account())


def _match(
    session: Session, keyring: Keyring, requester: Requester, caller_id: uuid.UUID | None
) -> list[Caller]:
    if caller_id is not None:
        return [subjects.get(session, caller_id)]
    given = requester.given()
    return subjects.find(
        session, keyring, phone=given.get("phone"), email=given.get("email"), name=given.get("name")
    )


def submit(
    session: Session, keyring: Keyring, intake: Intake, *, now: dt.datetime | None = None
) -> RightsRequest:
    """Take a request in: the clock starts at receipt; the subject is found by blind index.

    One match links the subject; several put the request on hold for more information; none
    means the answer will be that no data is held. Nothing is disclosed here.
    """
    _check_role(session, SUBMITTERS, "take a rights request in")
    ctx = ctx_of(session)
    account_id = ctx.require_account()
    _validate_intake(session, intake)
    if intake.kind is Kind.RECTIFICATION and intake.changes:
        _check_rectification(session, keyring, intake.changes, None)
    if intake.verified_by_controller and ctx.role is not Role.CLIENT:
        raise PermissionDenied("only the controller may vouch for the requester's identity")
    source = intake.source or (Source.CLIENT if ctx.role is Role.CLIENT else Source.STAFF)
    if intake.external_id is not None:
        existing = session.scalars(
            select(RightsRequest.id).where(
                RightsRequest.account_id == account_id,
                RightsRequest.external_id == intake.external_id,
            )
        ).first()
        if existing is not None:
            raise Conflict("a request with this subject_request_id already exists")
    now = now or utcnow()
    received = intake.received_at or now
    first_due = clock.due_at(received)
    req = RightsRequest(
        id=uuid.uuid4(),
        account_id=account_id,
        external_id=intake.external_id,
        kind=intake.kind.value,
        source=source.value,
        state=State.RECEIVED.value,
        received_at=received,
        first_due_at=first_due,
        due_at=first_due,
        scope=intake.scope,
        callback_urls=json.dumps(list(intake.callback_urls)) if intake.callback_urls else None,
        created_by=ctx.actor_id,
        received_via=intake.received_via,
        verification_attempts=0,
        possibly_excessive=False,
        match_count=0,
    )
    given = intake.requester.given()
    req.requester_sealed = _seal(keyring, req, "requester", given)
    details: dict[str, Any] = {}
    if intake.changes:
        details["changes"] = dict(intake.changes)
    if intake.statement:
        details["statement"] = intake.statement
    if details:
        req.details_sealed = _seal(keyring, req, "details", details)
    matches = _match(session, keyring, intake.requester, intake.caller_id)
    req.match_count = len(matches)
    if len(matches) == 1:
        req.subject_id = matches[0].id
        req.possibly_excessive = _is_repeat(session, req)
    elif len(matches) > 1:
        req.state = State.WAITING_INFO.value
        req.waiting_reason, req.waiting_since = "identity_ambiguous", now
    if intake.verified_by_controller and req.state == State.RECEIVED.value:
        req.state, req.verified_at, req.verification_method = (
            State.VERIFIED.value,
            now,
            "controller",
        )
    session.add(req)
    session.flush()
    audit.record(
        session,
        "rights.receive",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={
            "kind": req.kind,
            "source": req.source,
            "matches": len(matches),
            "repeat": req.possibly_excessive,
        },
    )
    return req


def _is_repeat(session: Session, req: RightsRequest) -> bool:
    since = req.received_at - REPEAT_WINDOW
    n = session.scalar(
        select(func.count())
        .select_from(RightsRequest)
        .where(
            RightsRequest.account_id == req.account_id,
            RightsRequest.subject_id == req.subject_id,
            RightsRequest.kind == req.kind,
            RightsRequest.state != State.CANCELLED.value,
            RightsRequest.received_at >= since,
        )
    )
    return bool(n)


def get(session: Session, request_id: uuid.UUID) -> RightsRequest:
    req = session.get(RightsRequest, request_id)
    if req is None or req.account_id != ctx_of(session).account_id:
        raise NotFound("no such rights request")
    return req


def by_external_id(session: Session, external_id: str) -> RightsRequest:
    account_id = ctx_of(session).require_account()
    req = session.scalars(
        select(RightsRequest).where(
            RightsRequest.account_id == account_id, RightsRequest.external_id == external_id
        )
    ).first()
    if req is None:
        raise NotFound("no such rights request")
    return req


def list_requests(
    session: Session, *, open_only: bool = False, limit: int = 100, offset: int = 0
) -> list[RightsRequest]:
    """The account's requests, overdue and soonest due first (open ones before closed)."""
    account_id = ctx_of(session).require_account()
    q = select(RightsRequest).where(RightsRequest.account_id == account_id)
    if open_only:
        q = q.where(RightsRequest.state.in_([s.value for s in OPEN_STATES]))
    rows = list(session.scalars(q.order_by(RightsRequest.due_at).limit(limit).offset(offset)))
    rows.sort(key=lambda r: (r.state not in {s.value for s in OPEN_STATES}, r.due_at))
    return rows


def _open_request(session: Session, request_id: uuid.UUID) -> RightsRequest:
    req = get(session, request_id)
    if req.state not in {s.value for s in OPEN_STATES}:
        raise Conflict(f"the request is {req.state}: nothing more can be done with it")
    return req


def subject_of(session: Session, req: RightsRequest) -> Caller | None:
    """The request's data subject, while it exists (None: not found, or erased)."""
    return _subject(session, req)


def _subject(session: Session, req: RightsRequest) -> Caller | None:
    if req.subject_id is None:
        return None
    caller = session.get(Caller, req.subject_id)
    return caller if caller is not None and caller.account_id == req.account_id else None


# -- telling the requester --------------------------------------------------------------------


def _contact(session: Session, keyring: Keyring, caller: Caller) -> tuple[str | None, str | None]:
    """The e-mail and phone on file (never those the requester typed in): audited read."""
    cipher = keyring.cipher(session, caller.account_id, caller.id)
    email = (
        cipher.open_text("callers", "email", caller.id, caller.email_sealed)
        if caller.email_sealed
        else None
    )
    phone = (
        cipher.open_text("callers", "phone", caller.id, caller.phone_sealed)
        if caller.phone_sealed
        else None
    )
    audit.record(
        session, "subject.read", "caller", caller.id, subject_id=caller.id, details={"for": "dsr"}
    )
    return email, phone


def contact_on_file(
    session: Session, keyring: Keyring, caller: Caller
) -> tuple[str | None, str | None]:
    """The e-mail and phone on file of ``caller`` (audited read): where codes may be sent."""
    return _contact(session, keyring, caller)


def tell_requester(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    req: RightsRequest,
    text: str,
    *,
    contact: tuple[str | None, str | None] | None = None,
) -> str:
    """Send ``text`` to the requester; returns the channel used (a code).

    OpenDSR requests are answered to the controller's system (status callback, sent after
    the commit). Otherwise to the contact on file: by SMS when the requester was verified by a
    code sent by SMS, else by e-mail, else SMS; when neither is possible the letter is returned
    to the client user, who sends it ("letter").
    """
    channel = "letter"
    if req.source == Source.OPENDSR.value:
        channel = "callback"
    else:
        caller = _subject(session, req)
        if contact is None and caller is not None and req.verified_at is not None:
            contact = _contact(session, keyring, caller)
        if contact is not None:
            email, phone = contact
            # The channel the requester proved they hold comes first (a code by SMS: SMS).
            sms_first = req.verification_method == "sms_code" and bool(phone)
            if sms_first and outbox.sms is not None:
                outbox.sms.send(phone or "", text)
                channel = "sms"
            elif email and outbox.mailer is not None:
                outbox.mailer.send(Mail(to=email, subject=texts.REQUESTER_SUBJECT, text=text))
                channel = "email"
            elif phone and outbox.sms is not None:
                outbox.sms.send(phone, text)
                channel = "sms"
    audit.record(
        session,
        "rights.notify_requester",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={"channel": channel},
    )
    return channel


# -- identity verification (Art. 12(6)) -------------------------------------------------------


def _code_hash(keyring: Keyring, req: RightsRequest, code: str) -> str:
    key = keyring.derived_secret("rights-code")
    return hmac.new(key, f"{req.id}|{code}".encode(), hashlib.sha256).hexdigest()


def start_verification(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    request_id: uuid.UUID,
    method: str,
    *,
    now: dt.datetime | None = None,
) -> RightsRequest:
    """Send a one-time code to the e-mail or phone *on file*, or plan a callback to the number
    on file. Only the code is sent: no name, no other data."""
    _check_role(session, SUBMITTERS, "verify a requester")
    req = _open_request(session, request_id)
    if method not in VERIFICATION_METHODS:
        raise ValidationFailed("method must be one of: " + ", ".join(VERIFICATION_METHODS))
    if req.verified_at is not None:
        raise Conflict("the requester's identity is already verified")
    caller = _subject(session, req)
    if caller is None:
        raise Conflict("no data subject is linked to this request: there is nobody to verify")
    now = now or utcnow()
    email, phone = _contact(session, keyring, caller)
    req.code_hash, req.code_expires_at = None, None
    if method == "email_code":
        if not email:
            raise Conflict("no e-mail address on file for this data subject")
        if outbox.mailer is None:
            raise Conflict("e-mail is not configured (PERMANENCE_SMTP_HOST)")
        code = f"{secrets.randbelow(10**6):06d}"
        outbox.mailer.send(Mail(to=email, subject=texts.CODE_SUBJECT, text=texts.code_text(code)))
    elif method == "sms_code":
        if not phone:
            raise Conflict("no phone number on file for this data subject")
        if outbox.sms is None:
            raise Conflict("SMS is not configured (PERMANENCE_SMS_GATEWAY_URL)")
        code = f"{secrets.randbelow(10**6):06d}"
        outbox.sms.send(phone, texts.code_text(code))
    else:
        if method == "callback" and not phone:
            raise Conflict("no phone number on file for this data subject")
        code = ""
    if code:
        req.code_hash = _code_hash(keyring, req, code)
        req.code_expires_at = now + CODE_TTL
    req.verification_method = method
    req.verification_attempts = 0
    req.state = State.VERIFYING.value
    req.waiting_reason = req.waiting_since = None
    audit.record(
        session,
        "rights.verification_start",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={"method": method},
    )
    return req


def verify(
    session: Session,
    keyring: Keyring,
    request_id: uuid.UUID,
    *,
    code: str | None = None,
    callback_confirmed: bool = False,
    now: dt.datetime | None = None,
) -> bool:
    """Check the code (constant time; expiring; limited attempts) or record that the
    callback to the number on file confirmed the requester.

    Returns False on a wrong code *after* counting the attempt: the caller must let the
    transaction commit before refusing (raising here would roll the count back).
    """
    _check_role(session, SUBMITTERS, "verify a requester")
    req = _open_request(session, request_id)
    now = now or utcnow()
    if req.state != State.VERIFYING.value or req.verification_method is None:
        raise Conflict("start the verification first")
    if req.verification_method in CONFIRMED_METHODS:
        if not callback_confirmed:
            raise ValidationFailed("confirm that the callback to the number on file succeeded")
        ok = True
    else:
        if req.verification_attempts >= MAX_CODE_ATTEMPTS:
            raise TooManyCodeAttempts("too many wrong codes: send a new code")
        if req.code_expires_at is None or now > req.code_expires_at or req.code_hash is None:
            raise Conflict("the code has expired: send a new code")
        given = (code or "").strip()
        ok = hmac.compare_digest(req.code_hash, _code_hash(keyring, req, given))
        req.verification_attempts += 1
    if ok:
        req.verified_at, req.state = now, State.VERIFIED.value
        req.code_hash = req.code_expires_at = None
    audit.record(
        session,
        "rights.verified" if ok else "rights.verify_failed",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={"method": req.verification_method, "attempts": req.verification_attempts},
    )
    return ok


def add_information(
    session: Session, keyring: Keyring, request_id: uuid.UUID, requester: Requester
) -> RightsRequest:
    """The requester gave more identifiers (after an ambiguous match): match again."""
    _check_role(session, SUBMITTERS, "complete a rights request")
    req = _open_request(session, request_id)
    given = _open(keyring, req, "requester", req.requester_sealed)
    given = {**(given if isinstance(given, dict) else {}), **requester.given()}
    req.requester_sealed = _seal(keyring, req, "requester", given)
    matches = _match(session, keyring, Requester(**given), None)
    req.match_count = len(matches)
    req.subject_id = matches[0].id if len(matches) == 1 else None
    if len(matches) > 1:
        req.state, req.waiting_reason = State.WAITING_INFO.value, "identity_ambiguous"
        req.waiting_since = req.waiting_since or utcnow()
    else:
        req.state = State.VERIFIED.value if req.verified_at else State.RECEIVED.value
        req.waiting_reason = req.waiting_since = None
        if req.subject_id is not None:
            req.possibly_excessive = _is_repeat(session, req)
    audit.record(
        session,
        "rights.information_added",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={"matches": len(matches)},
    )
    return req


# -- the clock --------------------------------------------------------------------------------


def extend(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    request_id: uuid.UUID,
    reason: str,
    *,
    now: dt.datetime | None = None,
) -> tuple[RightsRequest, str, str]:
    """Extend by two further months (Art. 12(3)): once, before the first due date, with a
    reason sent to the requester. Returns the request, the letter and the channel used."""
    _check_role(session, EXECUTORS, "extend the time to answer")
    req = _open_request(session, request_id)
    if reason not in texts.EXTENSION_REASONS_FR:
        raise ValidationFailed(
            "reason must be one of: " + ", ".join(sorted(texts.EXTENSION_REASONS_FR))
        )
    now = now or utcnow()
    refused = clock.can_extend(req.received_at, req.first_due_at, req.extended_at is not None, now)
    if refused == "already_extended":
        raise Conflict("the time to answer was already extended once")
    if refused == "first_period_over":
        raise Conflict("an extension must be decided before the first due date")
    req.due_at = clock.due_at(req.received_at, clock.EXTENDED_PERIOD_MONTHS)
    req.extended_at, req.extension_reason = now, reason
    letter = texts.extension_letter(
        req.kind, reason, clock.local_day(req.due_at).strftime("%d/%m/%Y")
    )
    channel = tell_requester(session, keyring, outbox, req, letter)
    audit.record(
        session,
        "rights.extend",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={"reason": reason, "due": req.due_at.date().isoformat()},
    )
    return req, letter, channel


def wait_for_information(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    request_id: uuid.UUID,
    reason: str,
    *,
    now: dt.datetime | None = None,
) -> tuple[RightsRequest, str, str]:
    """Ask the requester for more (Art. 12(6)); the request waits. The due date stays: the
    controller must still answer in time, or refuse for lack of verification."""
    _check_role(session, EXECUTORS, "ask the requester for more information")
    req = _open_request(session, request_id)
    if reason not in texts.WAITING_REASONS_FR:
        raise ValidationFailed(
            "reason must be one of: " + ", ".join(sorted(texts.WAITING_REASONS_FR))
        )
    req.state, req.waiting_reason, req.waiting_since = (
        State.WAITING_INFO.value,
        reason,
        now or utcnow(),
    )
    letter = texts.waiting_letter(reason)
    channel = tell_requester(session, keyring, outbox, req, letter)
    audit.record(
        session,
        "rights.wait",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={"reason": reason},
    )
    return req, letter, channel


@dataclass(frozen=True)
class DueReminder:
    request_id: uuid.UUID
    account_id: uuid.UUID
    kind: str
    due_at: dt.datetime
    days_left: int


def due_soon(session: Session, now: dt.datetime, days: int = 7) -> list[DueReminder]:
    """Open requests of the context's account due within ``days`` days, or overdue."""
    account_id = ctx_of(session).require_account()
    rows = session.scalars(
        select(RightsRequest)
        .where(
            RightsRequest.account_id == account_id,
            RightsRequest.state.in_([s.value for s in OPEN_STATES]),
            RightsRequest.due_at <= clock.end_of_day(clock.local_day(now) + dt.timedelta(days)),
        )
        .order_by(RightsRequest.due_at)
    )
    return [
        DueReminder(r.id, r.account_id, r.kind, r.due_at, clock.days_left(r.due_at, now))
        for r in rows
    ]


def overdue_count(session: Session, now: dt.datetime) -> int:
    account_id = ctx_of(session).require_account()
    return int(
        session.scalar(
            select(func.count())
            .select_from(RightsRequest)
            .where(
                RightsRequest.account_id == account_id,
                RightsRequest.state.in_([s.value for s in OPEN_STATES]),
                RightsRequest.due_at < now,
            )
        )
        or 0
    )


def send_reminders(
    session: Session, outbox: Outbox, now: dt.datetime, *, send: bool
) -> list[DueReminder]:
    """Remind the account's rights contact (from the mandate) of requests due within 7 days
    or overdue, at most once a day per request. The e-mail names no person."""
    due = due_soon(session, now, clock.REMINDER_WINDOW_DAYS)
    if not send or not due:
        return due
    _row, mandate = _current_mandate(session)
    contact = mandate.controller.rights_contact
    out: list[DueReminder] = []
    for item in due:
        req = session.get(RightsRequest, item.request_id)
        assert req is not None
        if req.reminded_at is not None and now - req.reminded_at < dt.timedelta(hours=20):
            continue
        if outbox.mailer is not None and "@" in contact:
            state = "en retard" if item.days_left < 0 else f"à rendre dans {item.days_left} jour(s)"
            outbox.mailer.send(
                Mail(
                    to=contact,
                    subject="Demande d'exercice de droits : échéance proche",
                    text=(
                        f"Une demande {texts.KIND_FR[item.kind]} est {state} "
                        f"(échéance le {clock.local_day(item.due_at).strftime('%d/%m/%Y')}). "
                        f"Référence : {item.request_id}. Traitez-la depuis votre espace client."
                    ),
                )
            )
        req.reminded_at = now
        audit.record(
            session,
            "rights.remind",
            "rights_request",
            req.id,
            details={"days_left": item.days_left},
        )
        out.append(item)
    return out


# -- lookup -----------------------------------------------------------------------------------


@dataclass
class SubjectRecords:
    """Every record of one subject, found by indexed ids (nothing decrypted to find them)."""

    caller: Caller
    calls: list[Call] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    appointments: list[Appointment] = field(default_factory=list)
    consents: list[Consent] = field(default_factory=list)
    recordings: list[Recording] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    requests: list[RightsRequest] = field(default_factory=list)
    rectifications: list[Rectification] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "calls": len(self.calls),
            "messages": len(self.messages),
            "appointments": len(self.appointments),
            "consents": len(self.consents),
            "recordings": len(self.recordings),
            "deliveries": len(self.deliveries),
            "requests": len(self.requests),
            "rectifications": len(self.rectifications),
        }


def records_of(session: Session, caller: Caller) -> SubjectRecords:
    """Every record of ``caller`` (of the context's account): by caller id on indexed columns."""
    subjects.check_account(session, caller.account_id)
    a, c = caller.account_id, caller.id

    def rows(model: Any, column: Any, order: Any) -> list[Any]:
        # By caller id alone where the index is on the caller id alone: with an account filter
        # too, SQLite may pick the (account, date) index and walk the whole account. The caller
        # was checked to be of this account; row-level security applies on PostgreSQL.
        where = [column == c]
        if model in (Delivery, RightsRequest, Rectification):  # indexed (account, subject)
            where.append(model.account_id == a)
        return list(session.scalars(select(model).where(*where).order_by(order)))

    return SubjectRecords(
        caller=caller,
        calls=rows(Call, Call.caller_id, Call.started_at),
        messages=rows(Message, Message.caller_id, Message.created_at),
        appointments=rows(Appointment, Appointment.caller_id, Appointment.starts_at),
        consents=rows(Consent, Consent.caller_id, Consent.given_at),
        recordings=rows(Recording, Recording.caller_id, Recording.created_at),
        deliveries=rows(Delivery, Delivery.subject_id, Delivery.created_at),
        requests=rows(RightsRequest, RightsRequest.subject_id, RightsRequest.received_at),
        rectifications=rows(Rectification, Rectification.caller_id, Rectification.at),
    )


def find_records(
    session: Session,
    keyring: Keyring,
    *,
    phone: str | None = None,
    email: str | None = None,
    name: str | None = None,
) -> list[SubjectRecords]:
    """The subject(s) matching the identifiers (blind index), each with every record."""
    found = subjects.find(session, keyring, phone=phone, email=email, name=name)
    return [records_of(session, caller) for caller in found]


# -- decisions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    reason: str
    explanation: str
    cnil_complaint_informed: bool
    judicial_remedy_informed: bool
    justification: str | None = None


def refuse(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    request_id: uuid.UUID,
    refusal: Refusal,
    *,
    now: dt.datetime | None = None,
) -> tuple[RightsRequest, str, str]:
    """Refuse (Art. 12(4)): the reasons, the right to complain to the CNIL and the right to a
    judicial remedy are all required. Refusing as unfounded or excessive (Art. 12(5)) needs a
    written justification: the burden of proof is on the controller."""
    _check_role(session, EXECUTORS, "refuse a rights request")
    req = _open_request(session, request_id)
    _refuse(session, keyring, req, refusal)
    return _close_refused(session, keyring, outbox, req, refusal, now)


def _refuse(session: Session, keyring: Keyring, req: RightsRequest, refusal: Refusal) -> None:
    problems = []
    if refusal.reason not in texts.REFUSAL_REASONS_FR:
        problems.append("reason: one of " + ", ".join(sorted(texts.REFUSAL_REASONS_FR)))
    if not refusal.explanation.strip():
        problems.append("explanation: the reasons must be explained to the requester")
    if len(refusal.explanation) > MAX_TEXT:
        problems.append(f"explanation: at most {MAX_TEXT} characters")
    if not refusal.cnil_complaint_informed:
        problems.append("cnil_complaint_informed: the requester must be told of the CNIL")
    if not refusal.judicial_remedy_informed:
        problems.append("judicial_remedy_informed: the requester must be told of the courts")
    if refusal.reason in texts.EXCESSIVE_REASONS and (
        not refusal.justification or len(refusal.justification.strip()) < MIN_JUSTIFICATION
    ):
        problems.append(
            "justification: refusing as unfounded or excessive must be justified "
            f"(at least {MIN_JUSTIFICATION} characters)"
        )
    if problems:
        raise ValidationFailed("the refusal is not complete", problems)


def _close_refused(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    req: RightsRequest,
    refusal: Refusal,
    now: dt.datetime | None,
) -> tuple[RightsRequest, str, str]:
    now = now or utcnow()
    _set_details(
        keyring,
        req,
        refusal={"explanation": refusal.explanation, "justification": refusal.justification},
    )
    req.state, req.refusal_reason, req.completed_at = State.REFUSED.value, refusal.reason, now
    req.decided_by = ctx_of(session).actor_id
    letter = texts.refusal_letter(req.kind, refusal.reason, refusal.explanation.strip())
    channel = tell_requester(session, keyring, outbox, req, letter)
    audit.record(
        session,
        "rights.refuse",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={"reason": refusal.reason, "excessive_flag": req.possibly_excessive},
    )
    return req, letter, channel


def cancel(session: Session, request_id: uuid.UUID, *, now: dt.datetime | None = None) -> None:
    """Withdrawn by the requester or the controller: only while still pending."""
    _check_role(session, CONTROLLER, "cancel a rights request")
    req = get(session, request_id)
    if req.state not in {s.value for s in OPEN_STATES}:
        raise Conflict(f"the request is {req.state}: it can no longer be cancelled")
    req.state, req.cancelled_at = State.CANCELLED.value, now or utcnow()
    audit.record(session, "rights.cancel", "rights_request", req.id, subject_id=req.subject_id)


# -- execution --------------------------------------------------------------------------------


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
        from permanence.rights import package

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
    result.channel = tell_requester(session, keyring, outbox, req, result.letter, contact=contact)
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


def _rectify(
    session: Session, keyring: Keyring, req: RightsRequest, caller: Caller, now: dt.datetime
) -> dict[str, Any]:
    details = _details(keyring, req)
    changes: dict[str, Any] = details.get("changes") or {}
    statement: str | None = details.get("statement")
    cipher = keyring.cipher(session, caller.account_id, caller.id)
    actor = ctx_of(session).actor_id
    history: list[tuple[str, uuid.UUID, dict[str, Any]]] = []
    notify: set[uuid.UUID] = set()
    ident_changes = changes.get("identity") or {}
    if ident_changes:
        before = subjects.identity(session, keyring, caller)
        old = {k: getattr(before, k) for k in IDENTITY_FIELDS}
        new = {**old, **_checked_identity(ident_changes)}
        subjects.update_identity(session, keyring, caller, subjects.Identity(**new))
        changed = {k for k in IDENTITY_FIELDS if old[k] != new[k]}
        history.append(
            (
                "caller",
                caller.id,
                {
                    "before": {k: old[k] for k in sorted(changed)},
                    "after": {k: new[k] for k in sorted(changed)},
                },
            )
        )
        # The recipients received messages about this person: tell them all (Art. 19).
        notify.update(
            session.scalars(
                select(Message.id).where(
                    Message.account_id == caller.account_id, Message.caller_id == caller.id
                )
            )
        )
    for i, item in enumerate(changes.get("records") or []):
        is_message = item["kind"] == "message"
        table = "messages" if is_message else "appointments"
        rec = _record_of(session, item["kind"], uuid.UUID(str(item["id"])), caller.account_id)
        if rec is None or rec.caller_id != caller.id:
            raise NotFound(f"no such {item['kind']} of this data subject")
        fields: dict[str, Any] = item["fields"]
        payload, cleaned = _checked_record(session, keyring, i, rec, fields)
        previous = {k: payload.get(k) for k in sorted(fields)}
        rec.payload_sealed = cipher.seal_json(table, "payload", rec.id, cleaned)
        after = {k: cleaned.get(k) for k in sorted(fields)}
        history.append((item["kind"], rec.id, {"before": previous, "after": after}))
        if is_message:
            notify.add(rec.id)
    if statement:
        history.append(("caller", caller.id, {"statement": statement}))
    for kind, record_id, change in history:
        row = Rectification(
            id=uuid.uuid4(),
            account_id=caller.account_id,
            caller_id=caller.id,
            request_id=req.id,
            record_kind=kind,
            record_id=record_id,
            at=now,
            by=actor,
        )
        row.changed_sealed = cipher.seal_json("rectifications", "changed", row.id, change)
        session.add(row)
    session.flush()
    notified = 0
    for message_id in sorted(notify):
        notified += len(delivery.notify_recipients(session, message_id, "rectified"))
    audit.record(
        session,
        "rights.rectify",
        "caller",
        caller.id,
        subject_id=caller.id,
        details={"changes": len(history), "notices": notified},
    )
    return {"rectified": len(history), "notices": notified}


def _restrict(session: Session, caller: Caller, now: dt.datetime) -> dict[str, Any]:
    caller.restricted_at = now
    notified = 0
    for message_id in session.scalars(
        select(Message.id).where(
            Message.account_id == caller.account_id, Message.caller_id == caller.id
        )
    ).all():
        notified += len(delivery.notify_recipients(session, message_id, "restricted"))
    audit.record(
        session,
        "rights.restrict",
        "caller",
        caller.id,
        subject_id=caller.id,
        details={"notices": notified},
    )
    return {"restricted": 1, "notices": notified}


def lift_restriction(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    request_id: uuid.UUID,
    *,
    now: dt.datetime | None = None,
) -> tuple[RightsRequest, str, str]:
    """Lift a restriction: the subject is told first (Art. 18(3)), then processing resumes
    and deliveries held meanwhile go out."""
    _check_role(session, CONTROLLER, "lift a restriction")
    req = get(session, request_id)
    if req.kind != Kind.RESTRICTION.value or req.state != State.COMPLETED.value:
        raise Conflict("only a restriction that was applied can be lifted")
    if req.restriction_lifted_at is not None:
        raise Conflict("the restriction was already lifted")
    caller = _subject(session, req)
    if caller is None:
        raise Conflict("the data subject no longer exists")
    now = now or utcnow()
    letter = texts.restriction_lift_letter()
    channel = tell_requester(session, keyring, outbox, req, letter)
    caller.restricted_at = None
    req.restriction_lifted_at = now
    released = session.execute(
        update(Delivery)
        .where(
            Delivery.account_id == caller.account_id,
            Delivery.subject_id == caller.id,
            Delivery.status == Status.PENDING.value,
            Delivery.next_attempt_at.is_(None),
        )
        .values(next_attempt_at=now)
    )
    audit.record(
        session,
        "rights.restriction_lift",
        "caller",
        caller.id,
        subject_id=caller.id,
        details={"released": int(getattr(released, "rowcount", 0) or 0), "notice": channel},
    )
    return req, letter, channel


def _object(
    session: Session, req: RightsRequest, caller: Caller, now: dt.datetime
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    files: list[tuple[str, str]] = []
    if req.scope == "recording":
        caller.recording_objected_at = now
        recs = list(
            session.scalars(
                select(Recording).where(
                    Recording.account_id == caller.account_id, Recording.caller_id == caller.id
                )
            )
        )
        for rec in recs:
            files.append(("recordings", rec.storage_key))
            session.delete(rec)
        stopped = session.execute(
            update(Call)
            .where(
                Call.account_id == caller.account_id,
                Call.caller_id == caller.id,
                Call.recording_state.in_(("offered", "recording")),
            )
            .values(recording_state="objected")
        )
        session.flush()
        outcome = {
            "recordings_discarded": len(recs),
            "calls_stopped": int(getattr(stopped, "rowcount", 0) or 0),
        }
    else:
        # Objection to a purpose: the subject's records under it stop being processed.
        erased = 0
        for msg in session.scalars(
            select(Message).where(
                Message.account_id == caller.account_id,
                Message.caller_id == caller.id,
                Message.purpose == req.scope,
            )
        ).all():
            delivery.notify_recipients(session, msg.id, "erased")
            session.delete(msg)
            erased += 1
        appts = session.execute(
            delete(Appointment).where(
                Appointment.account_id == caller.account_id,
                Appointment.caller_id == caller.id,
                Appointment.purpose == req.scope,
            )
        )
        withdrawn = session.execute(
            update(Consent)
            .where(
                Consent.account_id == caller.account_id,
                Consent.caller_id == caller.id,
                Consent.purpose == req.scope,
                Consent.withdrawn_at.is_(None),
            )
            .values(withdrawn_at=now, withdrawn_channel="web")
        )
        session.flush()
        outcome = {
            "messages_erased": erased,
            "appointments_erased": int(getattr(appts, "rowcount", 0) or 0),
            "consents_withdrawn": int(getattr(withdrawn, "rowcount", 0) or 0),
        }
    audit.record(
        session,
        "rights.object",
        "caller",
        caller.id,
        subject_id=caller.id,
        details={"scope": req.scope or "", **outcome},
    )
    return outcome, files


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
    notices = 0
    for message_id in session.scalars(
        select(Message.id).where(Message.caller_id == c, Message.account_id == a)
    ).all():
        notices += len(delivery.notify_recipients(session, message_id, "erased"))
    files = [
        ("recordings", key)
        for key in session.scalars(
            select(Recording.storage_key).where(Recording.caller_id == c, Recording.account_id == a)
        )
    ]
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
    gone("recordings", delete(Recording).where(Recording.account_id == a, Recording.caller_id == c))
    gone("consents", delete(Consent).where(Consent.account_id == a, Consent.caller_id == c))
    gone(
        "appointments",
        delete(Appointment).where(Appointment.account_id == a, Appointment.caller_id == c),
    )
    gone("messages", delete(Message).where(Message.account_id == a, Message.caller_id == c))
    gone("calls", delete(Call).where(Call.account_id == a, Call.caller_id == c))
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
    caller = session.get(Caller, c)
    caller_deleted = caller is not None and caller.account_id == a
    if caller_deleted:
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
    from permanence.contracts.offboarding import sign_document

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

    if entry.subject_id is None:  # an off-boarding: backup.service.replay_offboarding
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


def recipients(session: Session, request_id: uuid.UUID) -> list[delivery.Recipient]:
    """Art. 19: who received the subject's messages (on the subject's request)."""
    _check_role(session, EXECUTORS | SUBMITTERS, "see the recipients")
    req = get(session, request_id)
    caller = _subject(session, req)
    if caller is None:
        return []
    if req.verified_at is None:
        raise Conflict("verify the requester's identity before disclosing anything")
    seen: dict[tuple[str, str], delivery.Recipient] = {}
    for message_id in session.scalars(
        select(Message.id).where(
            Message.account_id == caller.account_id, Message.caller_id == caller.id
        )
    ).all():
        for r in delivery.recipients_of(session, message_id):
            key = (r.channel, r.description)
            if key not in seen or r.first_received_at < seen[key].first_received_at:
                seen[key] = r
    audit.record(session, "rights.recipients", "rights_request", req.id, subject_id=req.subject_id)
    return sorted(seen.values(), key=lambda r: r.first_received_at)


def is_closed(req: RightsRequest) -> bool:
    return req.state in {s.value for s in CLOSED_STATES}
