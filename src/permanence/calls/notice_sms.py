"""The second layer of the callers' notice, sent to the caller by SMS at their request: by the
operator from the screen pop, or by the key the mandate names (``notice.sms_key``) while the
first layer is spoken (docs/telephony.md).

The SMS holds the client's name and the link to the notice of the mandate version pinned on
the call, nothing else. It goes through the delivery ledger (channel ``notice_sms``, the
call's id as its target): retries and failures are the ledger's. The call records when and
which version; the audit entry names the call, the version and who asked, never the number.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from permanence.accounts.service import mandate_by_id
from permanence.audit import service as audit
from permanence.calls.model import Call
from permanence.config import Settings
from permanence.db import utcnow
from permanence.delivery import channels as content
from permanence.delivery.model import Channel, Delivery, Event, Status
from permanence.delivery.own_channels import Sender, prepares
from permanence.delivery.ports import SendFailed
from permanence.errors import Conflict
from permanence.mandates.layer2 import layer2_url
from permanence.mandates.mandate import Mandate
from permanence.runtime import Runtime

VIA = ("operator", "keypress")


def notice_link(mandate: Mandate, base_url: str, call: Call) -> str:
    """The notice of the mandate version the call was taken under, in the call's language."""
    link = layer2_url(mandate, base_url)
    if call.language == "en" and not mandate.notice.layer2_url:
        link += "?lang=en"
    return link


def sms_configured(settings: Settings) -> bool:
    return bool(settings.sms_gateway_url and settings.sms_from)


def send_notice(session: Session, settings: Settings, call: Call, *, via: str) -> Delivery:
    """Queue the SMS in the ledger (the delivery worker sends it) and record it on the call."""
    if via not in VIA:
        raise ValueError(via)
    if not sms_configured(settings):
        raise Conflict(
            "the SMS channel is not configured: read the address of the notice to the caller"
        )
    if call.from_sealed is None or call.caller_id is None:
        raise Conflict(
            "the caller's number is withheld: read the address of the notice to the caller"
        )
    row, _mandate = mandate_by_id(session, call.mandate_id)
    now = utcnow()
    delivery = Delivery(
        account_id=call.account_id,
        message_id=call.id,
        subject_id=call.caller_id,
        mandate_id=call.mandate_id,
        event=Event.NOTICE.value,
        channel=Channel.NOTICE_SMS.value,
        recipient_index=0,
        status=Status.PENDING.value,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    session.flush()
    call.notice_sms_at = now
    call.notice_sms_version = row.version
    audit.record(
        session,
        "call.notice_sms",
        "call",
        call.id,
        subject_id=call.caller_id,
        details={"version": row.version, "via": via, "delivery": delivery.id},
    )
    return delivery


@prepares(Channel.NOTICE_SMS)
def notice_sms(session: Session, rt: Runtime, row: Delivery, sender: Sender) -> tuple[str, str]:
    """The SMS of one ledger row, for the delivery worker (``delivery.own_channels``): the
    number is opened from the call only now, to send."""
    call = session.get(Call, row.message_id)
    if call is None or call.from_sealed is None or call.caller_id is None:
        raise SendFailed("call_gone", retry=False)
    if sender.mandate is None:  # the worker passes the row's version; never None here
        raise SendFailed("mandate_missing", retry=False)
    cipher = rt.keyring.cipher(session, call.account_id, call.caller_id)
    number = cipher.open_text("calls", "from", call.id, call.from_sealed)
    link = notice_link(sender.mandate, sender.base_url, call)
    return number, content.notice_sms(sender.account_name, link)
