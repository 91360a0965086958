"""OpenDSR status callbacks through the delivery ledger (issue 19).

When an OpenDSR request's status changes (``pending``, ``in_progress``, ``completed``,
``cancelled``), one ledger row per callback URL is written in the same transaction as the
change: channel ``opendsr_callback``, event ``status``, ``message_id`` the request's id,
``recipient_index`` the URL's index, no subject id and no mandate. The delivery worker sends
them, retries with its back-off (``delivery.service.RETRY_DELAYS``) and records every attempt;
the route that made the change also tries them at once, after its commit (``attempt_now``).

The body is built when it is sent, from the request as it is then: its status, and for an
access or portability result the client's own link (``results_url``, derived from the master
key, given while unused). A callback that failed is retried; the link is not lost with it, and
polling gives it too. Bodies are signed with the processor certificate's key (ADR 0028).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.base import NEVER_SET, NO_VALUE

from permanence.accounts.model import Account
from permanence.db import utcnow
from permanence.delivery.model import Channel, Delivery, DeliveryEvent, Event, Status
from permanence.delivery.own_channels import Sender, prepares
from permanence.delivery.ports import SendFailed, WebhookRequest, WebhookSender
from permanence.rights import opendsr
from permanence.rights.model import RightsRequest, Source
from permanence.runtime import Runtime


def _urls(req: RightsRequest) -> list[str]:
    urls = json.loads(req.callback_urls or "[]")
    return [u for u in urls if isinstance(u, str)]


def enqueue(session: Session, req: RightsRequest) -> list[Delivery]:
    """Ledger rows telling each callback URL of ``req`` its current status; the rows still
    pending for an earlier status are cancelled (the new one says more)."""
    urls = _urls(req)
    if not urls:
        return []
    now = utcnow()
    with session.no_autoflush:
        stale = session.scalars(
            select(Delivery).where(
                Delivery.account_id == req.account_id,
                Delivery.message_id == req.id,
                Delivery.channel == Channel.OPENDSR_CALLBACK.value,
                Delivery.status == Status.PENDING.value,
            )
        ).all()
    for row in stale:
        row.status, row.next_attempt_at = Status.CANCELLED.value, None
        row.cancelled_at, row.last_error = now, "superseded"
        session.add(
            DeliveryEvent(
                account_id=row.account_id,
                delivery_id=row.id,
                at=now,
                status=Status.CANCELLED.value,
                attempt=row.attempts,
                error="superseded",
            )
        )
    rows = []
    for index in range(len(urls)):
        row = Delivery(
            id=uuid.uuid4(),
            account_id=req.account_id,
            message_id=req.id,
            subject_id=None,
            mandate_id=None,
            event=Event.STATUS.value,
            channel=Channel.OPENDSR_CALLBACK.value,
            recipient_index=index,
            status=Status.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        rows.append(row)
        session.add(row)
        session.add(
            DeliveryEvent(
                account_id=row.account_id,
                delivery_id=row.id,
                at=now,
                status=Status.PENDING.value,
                attempt=0,
            )
        )
    return rows


@event.listens_for(RightsRequest.state, "set", active_history=True)
def _state_set(target: RightsRequest, value: Any, oldvalue: Any, _initiator: Any) -> None:
    """Every change of an OpenDSR request's status (as OpenDSR names it) enqueues its
    callbacks, in the transaction that makes the change. A request being created is answered
    by its receipt, not by a callback."""
    if oldvalue is NO_VALUE or oldvalue is NEVER_SET or value == oldvalue:
        return
    if target.source != Source.OPENDSR.value or not target.callback_urls:
        return
    if opendsr.status_of(str(value)) == opendsr.status_of(str(oldvalue)):
        return
    session = object_session(target)
    if session is None or target not in session or target in session.new:
        return
    enqueue(session, target)


def callback_request(session: Session, rt: Runtime, row: Delivery) -> WebhookRequest:
    """The signed POST for one ledger row, built now (the worker calls this to send)."""
    from permanence.rights import downloads
    from permanence.rights.opendsr_signing import processor

    req = session.get(RightsRequest, row.message_id)
    account = session.get(Account, row.account_id)
    if req is None or account is None or req.account_id != row.account_id:
        raise SendFailed("request_gone", retry=False)
    urls = _urls(req)
    if row.recipient_index >= len(urls):
        raise SendFailed("callback_url_gone", retry=False)
    url = urls[row.recipient_index]
    results_url = None
    if downloads.controller_link(session, rt.keyring, req, utcnow()) is not None:
        token = downloads.controller_token(rt.keyring, req.account_id, req.id)
        base = rt.settings.public_base_url.rstrip("/")
        results_url = f"{base}/api/v1/rights/downloads/{token}"
    doc = opendsr.status_document(req, account, results_url)
    body = opendsr.body_bytes({**doc, "status_callback_url": url})
    signer = processor(rt.settings, rt.keyring)
    headers = {
        "Content-Type": "application/json",
        "X-Permanence-Delivery": str(row.id),
        **opendsr.signature_headers(signer, rt.settings.public_base_url, body),
    }
    return WebhookRequest(url, body, headers)


@prepares(Channel.OPENDSR_CALLBACK)
def _prepare(session: Session, rt: Runtime, row: Delivery, _sender: Sender) -> WebhookRequest:
    """The worker's preparer of this channel (``delivery.own_channels``)."""
    return callback_request(session, rt, row)


def attempt_now(
    rt: Runtime, sender: WebhookSender, account_id: uuid.UUID, request_id: uuid.UUID
) -> dict[str, int]:
    """Try the request's due callbacks now (after the commit that enqueued them); what fails
    stays in the ledger for the worker's retries."""
    from permanence.delivery.worker import Channels
    from permanence.delivery.worker import attempt_now as run

    return run(rt, account_id, request_id, Channels(mailer=None, webhooks=sender, sms=None))
