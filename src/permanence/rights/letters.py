"""Telling the requester: the contact on file, the letter by e-mail or SMS."""

from __future__ import annotations

from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.crypto.keyring import Keyring
from permanence.mail import Mail
from permanence.rights import texts
from permanence.rights.base import Outbox, _subject
from permanence.rights.model import RightsRequest, Source
from permanence.subjects.model import Caller


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
