"""The escalation clock: alerting the contacts on call, one after the other, until a message
(or a voicemail) is acknowledged. ``delivery.service`` starts and stops the clock; the worker
calls ``escalate_due`` on each pass, and sends the alert rows it creates.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.service import mandate_by_id
from permanence.audit import service as audit
from permanence.db import ctx_of
from permanence.delivery.model import Channel, Delivery, DeliveryEvent, Escalation, Event
from permanence.delivery.service import _new_delivery, event_kind
from permanence.delivery.targets import Notifiable, read_message, voicemail_notice
from permanence.mandates.oncall import next_on_call_start, on_call_now


def escalate_due(session: Session, now: dt.datetime, limit: int = 100) -> list[Delivery]:
    """Advance the escalation clocks that are due for the context's account.

    Step 1 alerts the contact on call now (or waits for the next window to open when nobody
    is); each later step, one ``escalation_after`` apart, alerts the next contact in the
    list, until every contact has been alerted once. An alert is an e-mail when the contact
    has an address, and an SMS. Returns the alert rows created (due now for the worker).
    """
    account_id = ctx_of(session).require_account()
    clocks = session.scalars(
        select(Escalation)
        .where(
            Escalation.account_id == account_id,
            Escalation.state == "waiting",
            Escalation.next_at <= now,
        )
        .order_by(Escalation.next_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    created: list[Delivery] = []
    for esc in clocks:
        msg: Notifiable | None = read_message(session, esc.message_id)
        event = Event.NEW
        if msg is None and (vm := voicemail_notice(session, esc.message_id)) is not None:
            msg, event = vm, Event.VOICEMAIL
        if msg is None or msg.acknowledged_at is not None:
            reason = "message_gone" if msg is None else "acknowledged"
            esc.state, esc.next_at, esc.ended_at, esc.end_reason = "stopped", None, now, reason
            continue
        _, mandate = mandate_by_id(session, esc.mandate_id)
        if mandate.on_call is None:
            esc.state, esc.next_at, esc.ended_at, esc.end_reason = "done", None, now, "no_on_call"
            continue
        contacts = mandate.on_call.contacts
        if esc.step == 0:
            # The rota is read in the mandate's zone, as the call routing reads it.
            index = on_call_now(mandate, now)
            if index is None:
                esc.next_at = next_on_call_start(mandate, now)
                continue
        else:
            index = ((esc.contact_index or 0) + 1) % len(contacts)
        esc.step += 1
        esc.contact_index = index
        channels = [Channel.ESCALATION_SMS]
        if contacts[index].email:
            channels.insert(0, Channel.ESCALATION_EMAIL)
        rows = [
            _new_delivery(msg, esc.mandate_id, ch, index, now, event=event, step=esc.step)
            for ch in channels
        ]
        session.add_all(rows)
        session.flush()
        for row in rows:
            session.add(
                DeliveryEvent(
                    account_id=row.account_id, delivery_id=row.id, at=now, status=row.status
                )
            )
        created += rows
        if esc.step >= len(contacts):
            esc.state, esc.next_at, esc.ended_at, esc.end_reason = "done", None, now, "list_done"
        else:
            esc.next_at = mandate.on_call.escalation_after.add_to(now)
        audit.record(
            session,
            f"{event_kind(event)}.escalate",
            event_kind(event),
            msg.id,
            subject_id=msg.caller_id,
            details={"step": esc.step, "contact": index},
        )
    session.flush()
    return created
