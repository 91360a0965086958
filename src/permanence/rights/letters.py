"""Telling the requester: the contact on file, the letter by e-mail or SMS, and the record of
each letter sent (``rights_letters``: what went, by which channel, whether it left).

Every letter names the controller and the request's reference (``texts.envelope``). A letter
the SMTP server or the SMS gateway refuses does not undo the decision it reports: it is
recorded as "failed" and shown on the request's page, to send again or by post.
"""

from __future__ import annotations

import datetime as dt
import re
import smtplib
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.crypto.keyring import Keyring
from permanence.db import utcnow
from permanence.delivery.ports import SendFailed
from permanence.mail import Mail
from permanence.rights import clock, texts
from permanence.rights.base import Outbox, _open, _seal, _subject
from permanence.rights.model import LetterKind, RightsLetter, RightsRequest, Source
from permanence.subjects.model import Caller

# A requester's single-use download link, as the completed letter carries it.
_LINK = re.compile(r"https?://\S+/rights/downloads/\S+")
LINK_KEPT_FR = "[lien personnel à usage unique, envoyé au demandeur et non conservé ici]"
# Letters that say nothing of the person's data: before the requester is verified they may go
# to the address the request came from (the others only to the contact on file, once verified).
DISCLOSE_NOTHING = frozenset({LetterKind.RECEIVED, LetterKind.EXTENSION, LetterKind.WAITING})
# What a channel that cannot deliver raises (the guard against personal data in a mail,
# ValidationFailed, is not among them: it is a fault of ours and propagates).
_SEND_ERRORS = (OSError, smtplib.SMTPException, SendFailed)


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


def reference(req: RightsRequest) -> str:
    """The short reference a requester is given and the desk shows ("DR-1A2B3C4D")."""
    return "DR-" + req.id.hex[:8].upper()


def controller_name(session: Session, req: RightsRequest) -> str:
    """The controller named in the letters: the mandate's controller, else the account."""
    from permanence.accounts.service import get_account, mandate_version

    try:
        return mandate_version(session, req.account_id)[1].controller.name
    except LookupError:
        return get_account(session, req.account_id).name


def _send(outbox: Outbox, channel: str, to: str, subject: str, text: str) -> tuple[str, str | None]:
    """Hand the letter to the mailer or the SMS gateway: ("sent", None) or ("failed", why)."""
    try:
        if channel == "sms":
            assert outbox.sms is not None
            outbox.sms.send(to, text)
        else:
            assert outbox.mailer is not None
            outbox.mailer.send(Mail(to=to, subject=subject, text=text))
    except _SEND_ERRORS as exc:
        return "failed", type(exc).__name__[:64]
    return "sent", None


def _record(
    session: Session,
    keyring: Keyring,
    req: RightsRequest,
    kind: LetterKind,
    channel: str,
    status: str,
    error: str | None,
    text: str,
) -> RightsLetter:
    letter = RightsLetter(
        id=uuid.uuid4(),
        account_id=req.account_id,
        request_id=req.id,
        kind=kind.value,
        channel=channel,
        status=status,
        error=error,
        sent_at=utcnow(),
    )
    letter.text_sealed = _seal(keyring, req, f"letter/{letter.id}", text)
    session.add(letter)
    session.flush()
    return letter


def tell_requester(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    req: RightsRequest,
    text: str,
    *,
    contact: tuple[str | None, str | None] | None = None,
    kind: LetterKind = LetterKind.OTHER,
) -> str:
    """Send ``text`` to the requester; returns the channel used (a code).

    OpenDSR requests are answered to the controller's system (status callback, sent after
    the commit). Otherwise to the contact on file: by SMS when the requester was verified by a
    code sent by SMS, else by e-mail, else SMS; when neither is possible the letter is returned
    to the client user, who sends it ("letter"). The letter names the controller and the
    request's reference, and is recorded with how it went (``letters_of``).
    """
    channel, to = "letter", ""
    if req.source == Source.OPENDSR.value:
        channel = "callback"
    else:
        caller = _subject(session, req)
        if contact is None and caller is not None and req.verified_at is not None:
            contact = _contact(session, keyring, caller)
        if contact is None and kind in DISCLOSE_NOTHING:
            # Not verified yet: a letter that discloses nothing (the time extended, more
            # information needed) goes where the request came from, as the acknowledgement.
            given = _open(keyring, req, "requester", req.requester_sealed)
            if isinstance(given, dict) and (given.get("email") or given.get("phone")):
                contact = (given.get("email"), given.get("phone"))
        if contact is not None:
            email, phone = contact
            # The channel the requester proved they hold comes first (a code by SMS: SMS).
            sms_first = req.verification_method == "sms_code" and bool(phone)
            if sms_first and outbox.sms is not None:
                channel, to = "sms", phone or ""
            elif email and outbox.mailer is not None:
                channel, to = "email", email
            elif phone and outbox.sms is not None:
                channel, to = "sms", phone
    return _dispatch(session, keyring, outbox, req, text, kind, channel, to)


def _dispatch(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    req: RightsRequest,
    text: str,
    kind: LetterKind,
    channel: str,
    to: str,
) -> str:
    controller = controller_name(session, req)
    ref = reference(req)
    full = texts.envelope(text, controller, ref)
    if channel == "callback":
        status, error = "callback", None
    elif channel == "letter":
        status, error = "to_post", None
    else:
        status, error = _send(outbox, channel, to, texts.letter_subject(controller, ref), full)
    # The copy kept is the letter as sent less the requester's own download link: whoever
    # reads it on the request's page must not be able to use (and so burn) that link.
    _record(session, keyring, req, kind, channel, status, error, _LINK.sub(LINK_KEPT_FR, full))
    audit.record(
        session,
        "rights.notify_requester",
        "rights_request",
        req.id,
        subject_id=req.subject_id,
        details={"channel": channel, "letter": kind.value, "status": status},
    )
    return channel


def acknowledge(
    session: Session,
    keyring: Keyring,
    outbox: Outbox,
    req: RightsRequest,
    given: dict[str, str],
) -> str:
    """The acknowledgement at intake: the date received, the deadline, what happens next.

    It discloses nothing (not even whether data is held), so it goes to the address the
    requester wrote from, or gave: their e-mail, else their phone by SMS; a request taken on a
    call with the caller already identified (no identifier typed) goes to the contact on file.
    OpenDSR requests are acknowledged by their signed receipt, not here."""
    if req.source == Source.OPENDSR.value:
        return "callback"
    email, phone = given.get("email"), given.get("phone")
    if not email and not phone and req.subject_id is not None:
        caller = _subject(session, req)
        if caller is not None:
            email, phone = _contact(session, keyring, caller)
    channel, to = "letter", ""
    if email and outbox.mailer is not None:
        channel, to = "email", email
    elif phone and outbox.sms is not None:
        channel, to = "sms", phone
    text = texts.received_letter(
        req.kind,
        _day(req.received_at),
        _day(req.due_at),
        verified=req.verified_at is not None,
    )
    return _dispatch(session, keyring, outbox, req, text, LetterKind.RECEIVED, channel, to)


def _day(when: dt.datetime) -> str:
    return clock.local_day(when).strftime("%d/%m/%Y")


@dataclass(frozen=True)
class SentLetter:
    id: uuid.UUID
    kind: str
    channel: str
    status: str
    error: str | None
    sent_at: dt.datetime
    text: str


def letters_of(session: Session, keyring: Keyring, req: RightsRequest) -> list[SentLetter]:
    """The letters sent for ``req``, oldest first, with their text (opened)."""
    rows = session.scalars(
        select(RightsLetter)
        .where(RightsLetter.account_id == req.account_id, RightsLetter.request_id == req.id)
        .order_by(RightsLetter.sent_at, RightsLetter.id)
    )
    return [
        SentLetter(
            r.id,
            r.kind,
            r.channel,
            r.status,
            r.error,
            r.sent_at,
            str(_open(keyring, req, f"letter/{r.id}", r.text_sealed)),
        )
        for r in rows
    ]
