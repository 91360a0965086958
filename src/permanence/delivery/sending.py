"""What the delivery worker sends: each claimed ledger row prepared into one attempt (an
e-mail, a signed webhook, an SMS; the channels a feature prepares itself through
``delivery.own_channels``), and the attempt made through the outside world's ports
(``Channels``). Split from ``delivery.worker``, which claims, records and loops (ADR 0037).
"""

from __future__ import annotations

import datetime as dt
import smtplib
import uuid
from dataclasses import dataclass, field, replace

from sqlalchemy.orm import Session

from permanence import __version__
from permanence.accounts.model import Account
from permanence.accounts.service import mandate_by_id
from permanence.config import Settings
from permanence.delivery import channels as content
from permanence.delivery.model import Channel, Delivery, Event
from permanence.delivery.own_channels import Sender, preparer
from permanence.delivery.ports import (
    HttpWebhookSender,
    SendFailed,
    SmsSender,
    WebhookRequest,
    WebhookSender,
    sms_gateway_for,
)
from permanence.delivery.targets import Notifiable
from permanence.delivery.webhook_secrets import signing_secrets
from permanence.errors import ValidationFailed
from permanence.mail import Mail, Mailer, mailer_for
from permanence.mandates.schema import EmailNotificationRecipient, Mandate, WebhookRecipient
from permanence.runtime import Runtime


@dataclass
class Channels:
    """The outside world the worker talks to."""

    mailer: Mailer | None
    webhooks: WebhookSender
    sms: SmsSender | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Channels:
        return cls(
            mailer=mailer_for(settings),
            webhooks=HttpWebhookSender(),
            sms=sms_gateway_for(settings),
        )


@dataclass(frozen=True)
class Job:
    delivery_id: uuid.UUID
    attempt: int
    channel: Channel
    mail: Mail | None = None
    webhook: WebhookRequest | None = None
    sms: tuple[str, str] | None = None
    error: SendFailed | None = None  # could not even be prepared


@dataclass
class Prepared:
    """What a claim transaction needs, read once per pass and account."""

    account: Account
    base_url: str
    mandates: dict[uuid.UUID, Mandate] = field(default_factory=dict)

    def mandate(self, session: Session, mandate_id: uuid.UUID | None) -> Mandate:
        if mandate_id is None:  # only OpenDSR callbacks have none, prepared apart
            raise SendFailed("mandate_missing", retry=False)
        if mandate_id not in self.mandates:
            self.mandates[mandate_id] = mandate_by_id(session, mandate_id)[1]
        return self.mandates[mandate_id]


def prepare(
    session: Session,
    rt: Runtime,
    prepared: Prepared,
    row: Delivery,
    msg: Notifiable | None,
    now: dt.datetime,
) -> Job:
    channel, event = Channel(row.channel), Event(row.event)
    mandate = prepared.mandate(session, row.mandate_id)
    account = prepared.account
    if channel is Channel.NOTICE_SMS:
        return prepare_own(session, rt, prepared, row, mandate)
    voicemail = event is Event.VOICEMAIL
    link = (
        content.voicemail_link(prepared.base_url)
        if voicemail
        else content.portal_link(prepared.base_url, row.message_id)
    )
    urgent = bool(msg and msg.urgent)
    job = Job(delivery_id=row.id, attempt=row.attempts, channel=channel)
    if channel is Channel.EMAIL:
        recipient = mandate.recipients[row.recipient_index]
        assert isinstance(recipient, EmailNotificationRecipient)
        if voicemail:
            text = content.voicemail_email(account.name, link)
        elif event is Event.NEW:
            text = content.message_email(account.name, link, urgent=urgent)
        else:
            text = content.change_email(account.name, link, event)
        mail = Mail(recipient.to, text.subject, text.body, delivery_id=str(row.id))
        return with_(job, mail=mail)
    if channel is Channel.WEBHOOK:
        recipient = mandate.recipients[row.recipient_index]
        assert isinstance(recipient, WebhookRecipient)
        secrets = signing_secrets(session, rt.keyring, recipient.secret_ref, now)
        if not secrets:
            return with_(job, error=SendFailed("secret_missing"))
        body = content.webhook_body(
            delivery_id=row.id,
            event=event,
            message_id=row.message_id,
            account_slug=account.slug,
            link=link,
            purpose=msg.purpose if msg else None,
            created_at=msg.created_at if msg else None,
            urgent=urgent,
            changed_at=row.created_at,
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"Permanence/{__version__}",
            "X-Permanence-Delivery": str(row.id),
            "X-Permanence-Event": content.webhook_event(event),
            content.SIGNATURE_HEADER: content.signature(secrets, body, int(now.timestamp())),
        }
        return with_(job, webhook=WebhookRequest(recipient.url, body, headers))
    assert mandate.on_call is not None
    contact = mandate.on_call.contacts[row.recipient_index]
    if channel is Channel.ESCALATION_EMAIL:
        assert contact.email is not None
        text = content.escalation_email(account.name, link, urgent=urgent)
        mail = Mail(contact.email, text.subject, text.body, delivery_id=str(row.id))
        return with_(job, mail=mail)
    return with_(job, sms=(contact.phone, content.escalation_sms(account.name, urgent=urgent)))


def prepare_own(
    session: Session,
    rt: Runtime,
    prepared: Prepared,
    row: Delivery,
    mandate: Mandate | None = None,
) -> Job:
    """A channel its feature prepares (``delivery.own_channels``): an OpenDSR status
    callback (the request's status now, signed), the callers' notice by SMS (the number
    opened from the call only now, to send)."""
    channel = Channel(row.channel)
    job = Job(delivery_id=row.id, attempt=row.attempts, channel=channel)
    sender = Sender(prepared.account.name, prepared.base_url, mandate)
    try:
        sending = preparer(channel)(session, rt, row, sender)
    except SendFailed as failure:
        return with_(job, error=failure)
    if isinstance(sending, WebhookRequest):
        return with_(job, webhook=sending)
    return with_(job, sms=sending)


def with_(job: Job, **changes: object) -> Job:
    return replace(job, **changes)  # type: ignore[arg-type]


def send(job: Job, channels: Channels) -> SendFailed | None:
    """Perform one attempt; the failure (a code), or None when it went through."""
    if job.error is not None:
        return job.error
    try:
        if job.mail is not None:
            if channels.mailer is None:
                return SendFailed("smtp_not_configured")
            send_mail(channels.mailer, job.mail)
        elif job.webhook is not None:
            channels.webhooks.post(job.webhook)
        elif job.sms is not None:
            if channels.sms is None:
                return SendFailed("sms_not_configured")
            channels.sms.send(*job.sms)
    except SendFailed as failure:
        return failure
    return None


def send_mail(mailer: Mailer, mail: Mail) -> None:
    try:
        mailer.send(mail)
    except ValidationFailed:
        # The mailer found personal data in the text: a bug to fix, never worth a retry.
        raise SendFailed("mail_refused", retry=False) from None
    except smtplib.SMTPRecipientsRefused:
        raise SendFailed("smtp_recipient_refused", retry=False) from None
    except smtplib.SMTPResponseException as exc:
        raise SendFailed(f"smtp_{exc.smtp_code}", retry=exc.smtp_code < 500) from None
    except (smtplib.SMTPException, OSError):
        raise SendFailed("smtp_unavailable") from None
