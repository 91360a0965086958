"""What each channel says, and the webhook signature. Pure functions: no database, no I/O.

Nothing here ever sees a caller's name, number or message text: e-mails and SMS say that
something is waiting and link to the portal; webhooks carry ids and metadata only, and the
receiver fetches the content through the API with its own credentials.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from permanence.delivery.model import Event

SIGNATURE_HEADER = "X-Permanence-Signature"
# Receivers should refuse signatures older than this (replay); documented in docs/delivery.md.
SIGNATURE_TOLERANCE = dt.timedelta(minutes=5)


def portal_link(base_url: str, message_id: uuid.UUID) -> str:
    return f"{base_url.rstrip('/')}/portail/messages/{message_id}"


def voicemail_link(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/portail/messagerie-vocale"


@dataclass(frozen=True)
class Text:
    subject: str
    body: str


_CHANGE_FR = {
    Event.RECTIFIED: ("Message rectifié", "a été rectifié à la demande de la personne concernée"),
    Event.ERASED: ("Message effacé", "a été effacé à la demande de la personne concernée"),
    Event.RESTRICTED: (
        "Message au traitement limité",
        "fait l'objet d'une limitation du traitement : il est conservé mais ne doit plus être "
        "utilisé",
    ),
}
_CHANGE_ASK_FR = {
    Event.RECTIFIED: "Mettez à jour toute copie que vous en auriez faite.",
    Event.ERASED: "Supprimez toute copie que vous en auriez faite.",
    Event.RESTRICTED: "N'utilisez plus les copies que vous en auriez faites, conservez-les "
    "seulement.",
}
_FOOTER_FR = (
    "Pour protéger les personnes qui vous ont appelé, cet e-mail ne contient ni nom, "
    "ni numéro, ni contenu de message.\n\n-- \nPermanence"
)


def message_email(account_name: str, link: str, *, urgent: bool) -> Text:
    subject = f"Nouveau message pour {account_name}"
    if urgent:
        subject = f"[Urgent] {subject}"
    body = (
        "Bonjour,\n\n"
        f"Un nouveau message{' urgent' if urgent else ''} vous attend sur votre portail "
        "Permanence.\n\n"
        f"Consulter le message : {link}\n\n" + _FOOTER_FR + "\n"
    )
    return Text(subject, body)


def voicemail_email(account_name: str, link: str) -> Text:
    body = (
        "Bonjour,\n\n"
        "Un message vocal vous attend sur votre portail Permanence.\n\n"
        f"L'écouter : {link}\n\n" + _FOOTER_FR + "\n"
    )
    return Text(f"Nouveau message vocal pour {account_name}", body)


def notice_sms(account_name: str, link: str) -> str:
    """The second layer sent to a caller: the client's name and the link, nothing else."""
    return f"{account_name} : {link}"


def webhook_event(event: Event) -> str:
    """The event name a webhook receiver sees."""
    if event is Event.VOICEMAIL:
        return "voicemail.created"
    return "message.created" if event is Event.NEW else f"message.{event.value}"


def change_email(account_name: str, link: str, change: Event) -> Text:
    title, what = _CHANGE_FR[change]
    body = (
        "Bonjour,\n\n"
        f"Un message qui vous a été transmis {what} "
        "(article 19 du RGPD).\n"
        f"{_CHANGE_ASK_FR[change]}\n\n"
        f"Référence : {link}\n\n" + _FOOTER_FR + "\n"
    )
    return Text(f"{title} pour {account_name}", body)


def escalation_email(account_name: str, link: str, *, urgent: bool) -> Text:
    kind = "urgent " if urgent else ""
    body = (
        "Bonjour,\n\n"
        f"Un message {kind}pour {account_name} n'a pas été acquitté dans le délai prévu. "
        "Vous êtes la personne d'astreinte à prévenir.\n\n"
        f"Consulter le message : {link}\n\n" + _FOOTER_FR + "\n"
    )
    return Text(f"Message {kind}non acquitté pour {account_name}", body)


def escalation_sms(account_name: str, *, urgent: bool) -> str:
    kind = "urgent " if urgent else ""
    return f"Permanence : message {kind}non acquitté pour {account_name}, voir le portail"


def webhook_body(
    *,
    delivery_id: uuid.UUID,
    event: Event,
    message_id: uuid.UUID,
    account_slug: str,
    link: str,
    purpose: str | None = None,
    created_at: dt.datetime | None = None,
    urgent: bool | None = None,
    changed_at: dt.datetime | None = None,
) -> bytes:
    """Ids and metadata only. ``event`` is ``message.created`` or ``message.<change>``."""
    data: dict[str, object] = {
        "event": webhook_event(event),
        "delivery_id": str(delivery_id),
        "message_id": str(message_id),
        "account": account_slug,
        "portal_url": link,
    }
    if event is Event.VOICEMAIL:
        data["created_at"] = created_at.isoformat() if created_at else None
    elif event is Event.NEW:
        data["purpose"] = purpose
        data["created_at"] = created_at.isoformat() if created_at else None
        data["urgent"] = bool(urgent)
    else:
        data["changed_at"] = changed_at.isoformat() if changed_at else None
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def signature(secrets: Sequence[bytes], body: bytes, timestamp: int) -> str:
    """``t=<unix>,v1=<hex>`` with one ``v1`` per active secret (two during a rotation).

    Each ``v1`` is HMAC-SHA256 under the secret of ``"<t>." + body``.
    """
    signed = str(timestamp).encode() + b"." + body
    parts = [f"t={timestamp}"]
    parts += [f"v1={hmac.new(s, signed, hashlib.sha256).hexdigest()}" for s in secrets]
    return ",".join(parts)


def verify_signature(
    secret: bytes,
    header: str,
    body: bytes,
    now: dt.datetime,
    tolerance: dt.timedelta = SIGNATURE_TOLERANCE,
) -> bool:
    """What a receiver does (reference implementation; docs/delivery.md has a standalone one)."""
    items = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in items if k == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    sent = dt.datetime.fromtimestamp(int(stamps[0]), dt.UTC)
    if abs(now - sent) > tolerance:
        return False
    expected = hmac.new(secret, stamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for k, v in items if k == "v1")
