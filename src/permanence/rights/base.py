"""What every stage of a rights request shares: who may act, the limits, the outside
effects (``Outbox``), sealing what the requester gave, finding a request and its subject."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.config import Settings
from permanence.context import Role
from permanence.crypto.keyring import Keyring
from permanence.crypto.primitives import open_sealed, seal
from permanence.db import ctx_of
from permanence.delivery.ports import SmsSender, sms_gateway_for
from permanence.errors import Conflict, NotFound, PermanenceError, PermissionDenied
from permanence.filestore import LocalStore, RecordingStore, store_from_settings
from permanence.mail import Mailer, mailer_for
from permanence.mandates.base import FieldCategory, FieldType
from permanence.mandates.purposes import Field as MandateField
from permanence.rights.model import CLOSED_STATES, OPEN_STATES, RightsRequest
from permanence.staff.training import require_trained
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
    # The processor named in the access report (Art. 15(1)(c)): name, address, contact.
    processor: tuple[str, str, str] = ("", "", "")

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbox:
        return cls(
            mailer=mailer_for(settings),
            sms=sms_gateway_for(settings),
            recordings=store_from_settings(settings),
            files=LocalStore(settings.data_dir / "rights"),
            base_url=settings.public_base_url.rstrip("/"),
            processor=(
                settings.provider_name,
                settings.provider_address,
                settings.provider_contact_email,
            ),
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


def _check_role(session: Session, allowed: frozenset[Role], what: str) -> None:
    ctx = ctx_of(session)
    if ctx.role not in allowed and ctx.role is not Role.SYSTEM:
        raise PermissionDenied(f"your role does not allow you to {what}")
    require_trained(session, ctx)


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


def is_closed(req: RightsRequest) -> bool:
    return req.state in {s.value for s in CLOSED_STATES}
