"""Outgoing e-mail, behind a small port.

Mail leaves the storage boundary in clear and cannot be erased once sent, so by rule the
product's e-mails carry no personal data: they say that something is waiting and link to the
portal. ``send`` refuses a body in which the detector finds structured personal data (phone,
e-mail other than the recipient's, NIR, IBAN, card) — a last guard, tested.

With no SMTP server configured, mail is not lost: it is written to a Maildir under the data
directory (``DATA_DIR/outbox/``), readable with any mail client or Python's ``mailbox`` module
(docs/adr/0019). The same guard applies there.
"""

from __future__ import annotations

import logging
import mailbox
import os
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from permanence.config import Settings
from permanence.errors import ConfigurationError, ValidationFailed
from permanence.pii import STRUCTURED_TYPES, detect

log = logging.getLogger("permanence.mail")


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    html: str | None = None
    # The delivery this mail carries out: gives it a stable Message-ID and an
    # X-Permanence-Delivery header, the same at every attempt, so that a receiver can drop a
    # copy sent twice (docs/delivery.md).
    delivery_id: str | None = None


class Mailer(Protocol):
    def send(self, mail: Mail) -> None: ...


# Our own record ids (in portal links) are not personal data, but their hex digits can pass a
# detector's checksum by chance (about one random UUID in 500 looked like an IBAN), which would
# block that message's notification for good: they are blanked before the scan.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def check_no_personal_data(mail: Mail) -> None:
    for part in (mail.subject, mail.text, mail.html or ""):
        scanned = _UUID.sub(" ", part)
        found = [e for e in detect(scanned, STRUCTURED_TYPES) if e.text.lower() != mail.to.lower()]
        if found:
            kinds = ", ".join(sorted({e.type for e in found}))
            raise ValidationFailed(f"refusing to e-mail personal data ({kinds})")


class SmtpMailer:
    """Sends through an SMTP server (STARTTLS and login when configured)."""

    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        if not settings.smtp_host:
            raise ConfigurationError("PERMANENCE_SMTP_HOST is not set: e-mail cannot be sent")
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.starttls = settings.smtp_starttls
        self.user = settings.smtp_user
        self.password = settings.smtp_password
        self.sender = settings.mail_from
        self.timeout = timeout

    def send(self, mail: Mail) -> None:
        check_no_personal_data(mail)
        msg = _message(self.sender, mail)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user and self.password:
                smtp.login(self.user, self.password)
            smtp.send_message(msg)


class MaildirMailer:
    """Writes each mail to a Maildir (``DATA_DIR/outbox/`` by default) instead of sending it:
    the mailer when no SMTP server is configured, so that a fresh installation and the demo
    keep their e-mails (reset links, notifications) where the operator of the machine can
    read them, rather than failing every delivery."""

    def __init__(self, settings: Settings, path: os.PathLike[str] | None = None) -> None:
        self.path = os.fspath(path) if path is not None else os.fspath(outbox_dir(settings))
        self.sender = settings.mail_from

    def send(self, mail: Mail) -> None:
        check_no_personal_data(mail)
        msg = _message(self.sender, mail)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        box = mailbox.Maildir(self.path, create=True)  # its folders: owner only (0700)
        try:
            box.add(msg)
        finally:
            box.close()
        log.info("mail written to the local outbox (no SMTP server configured)")


def outbox_dir(settings: Settings) -> Path:
    """Where mail goes when no SMTP server is configured."""
    return settings.data_dir / "outbox"


def _message(sender: str, mail: Mail) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    if mail.delivery_id:
        domain = sender.rpartition("@")[2] or "permanence.invalid"
        msg["Message-ID"] = f"<{mail.delivery_id}@{domain}>"
        msg["X-Permanence-Delivery"] = mail.delivery_id
    msg.set_content(mail.text)
    if mail.html:
        msg.add_alternative(mail.html, subtype="html")
    return msg


def mailer_for(settings: Settings) -> Mailer:
    """The SMTP mailer when a server is configured, else the local Maildir outbox."""
    if settings.smtp_host:
        return SmtpMailer(settings)
    return MaildirMailer(settings)
