"""A client's copy of its data (messages and appointments, with their fields) as CSV.

An export leaves the storage boundary in clear and cannot be shredded afterwards, so it is a
sensitive action: the caller of ``account_csv`` must have re-authenticated, and every record
opened is audited like a read.
"""

from __future__ import annotations

import csv
import io
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.crypto.keyring import Keyring
from permanence.db import ctx_of
from permanence.errors import KeyUnavailable
from permanence.messages.model import Appointment, Message

COLUMNS = ("kind", "id", "purpose", "status", "created_at", "starts_at", "ends_at", "fields")


def account_csv(session: Session, keyring: Keyring) -> str:
    """Every message and appointment of the context's account; the fields as JSON in one
    column (each purpose has its own). Records of erased callers are listed without fields."""
    account_id = ctx_of(session).require_account()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    count = 0
    for m in session.scalars(
        select(Message).where(Message.account_id == account_id).order_by(Message.created_at)
    ):
        fields = _open(keyring, session, "messages", m)
        writer.writerow(
            ("message", m.id, m.purpose, m.status, m.created_at.isoformat(), "", "", fields)
        )
        count += 1
    for a in session.scalars(
        select(Appointment)
        .where(Appointment.account_id == account_id)
        .order_by(Appointment.starts_at)
    ):
        fields = _open(keyring, session, "appointments", a)
        writer.writerow(
            (
                "appointment",
                a.id,
                a.purpose,
                a.status,
                a.created_at.isoformat(),
                a.starts_at.isoformat(),
                a.ends_at.isoformat(),
                fields,
            )
        )
        count += 1
    audit.record(session, "account.export", "account", account_id, details={"records": count})
    return out.getvalue()


def _open(
    keyring: Keyring,
    session: Session,
    table: str,
    row: Message | Appointment,
) -> str:
    try:
        cipher = keyring.cipher(session, row.account_id, row.caller_id)
        value = cipher.open_json(table, "payload", row.id, row.payload_sealed)
    except KeyUnavailable:
        return ""  # the caller was erased: nothing left to give
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
