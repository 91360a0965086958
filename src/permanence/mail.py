"""Outgoing e-mail, behind a small port.

Mail leaves the storage boundary in clear and cannot be erased once sent, so by rule the
product's e-mails carry no personal data: they say that something is waiting and link to the
portal. ``send`` refuses a body in which the detector finds structured personal data (phone,
e-mail other than the recipient's, NIR, IBAN, card) — a last guard, tested.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from permanence.config import Settings
from permanence.errors import ConfigurationError, ValidationFailed
from permanence.pii import STRUCTURED_TYPES, detect


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
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        if mail.delivery_id:
            domain = self.sender.rpartition("@")[2] or "permanence.invalid"
            msg["Message-ID"] = f"<{mail.delivery_id}@{domain}>"
            msg["X-Permanence-Delivery"] = mail.delivery_id
        msg.set_content(mail.text)
        if mail.html:
            msg.add_alternative(mail.html, subtype="html")
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user and self.password:
                smtp.login(self.user, self.password)
            smtp.send_message(msg)


def mailer_for(settings: Settings) -> Mailer | None:
    """The configured mailer, or None when no SMTP server is configured."""
    return SmtpMailer(settings) if settings.smtp_host else None
