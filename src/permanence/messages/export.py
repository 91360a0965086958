"""A client's copy of its data (messages and appointments, with their fields) as CSV.

An export leaves the storage boundary in clear and cannot be shredded afterwards, so it is a
sensitive action: the caller of ``account_csv`` must have re-authenticated, and every record
opened is audited like a read.

The file is made for a spreadsheet in French: ``;`` between cells and a UTF-8 byte-order mark
(what a French spreadsheet expects), French headers, one column per field of the purposes (in
the mandate's order, labelled as in the mandate), dates in Paris time, and every cell guarded
against formulas (``permanence.spreadsheet``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.service import mandate_by_id
from permanence.audit import service as audit
from permanence.crypto.keyring import Keyring
from permanence.db import ctx_of
from permanence.errors import KeyUnavailable
from permanence.mandates.base import FieldType
from permanence.mandates.mandate import Mandate
from permanence.mandates.purposes import Field
from permanence.messages.model import Appointment, Message
from permanence.spreadsheet import safe_cell

PARIS = ZoneInfo("Europe/Paris")
DELIMITER = ";"
BOM = "\ufeff"
COLUMNS = (
    "Type",
    "Identifiant",
    "Motif",
    "État",
    "Urgent",
    "Reçu le",
    "Début du rendez-vous",
    "Fin du rendez-vous",
)
KINDS = {"message": "Message", "appointment": "Rendez-vous"}
STATES = {
    "new": "À traiter",
    "acknowledged": "Traité",
    "booked": "Réservé",
    "cancelled": "Annulé",
    "restricted": "Traitement limité",
}


def paris(value: dt.datetime | None) -> str:
    """``JJ/MM/AAAA HH:MM`` in Paris time (a naive value is UTC, as stored by SQLite)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")


def account_csv(session: Session, keyring: Keyring) -> str:
    """Every message and appointment of the context's account, one column per field of the
    purposes. Records of erased callers are listed without their fields."""
    account_id = ctx_of(session).require_account()
    mandates: dict[uuid.UUID, tuple[int, Mandate]] = {}
    rows: list[tuple[list[str], Mapping[str, Any]]] = []
    for m in session.scalars(
        select(Message).where(Message.account_id == account_id).order_by(Message.created_at)
    ):
        mandate = _mandate(session, mandates, m.mandate_id)
        head = ["message", str(m.id), _purpose(mandate, m.purpose), m.status]
        head += ["oui" if m.urgent else "non", paris(m.created_at), "", ""]
        rows.append((head, _open(keyring, session, "messages", m)))
    for a in session.scalars(
        select(Appointment)
        .where(Appointment.account_id == account_id)
        .order_by(Appointment.starts_at)
    ):
        mandate = _mandate(session, mandates, a.mandate_id)
        head = ["appointment", str(a.id), _purpose(mandate, a.purpose), a.status, ""]
        head += [paris(a.created_at), paris(a.starts_at), paris(a.ends_at)]
        rows.append((head, _open(keyring, session, "appointments", a)))

    # One column per field, in the order the mandates declare them (the newest mandate first),
    # then any field a record holds that no mandate declares any more.
    fields: dict[str, Field | None] = {}
    for _, mandate in sorted(mandates.values(), key=lambda pair: -pair[0]):
        for purpose in mandate.purposes:
            for f in purpose.resolved_fields:
                fields.setdefault(f.name, f)
    for _, values in rows:
        for name in values:
            fields.setdefault(name, None)
    headers = [_header(name, f) for name, f in fields.items()]

    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, delimiter=DELIMITER)
    writer.writerow(COLUMNS + tuple(headers))
    for head, values in rows:
        head[0] = KINDS[head[0]]
        head[3] = STATES.get(head[3], head[3])
        cells = head + [_value(values.get(name), f) for name, f in fields.items()]
        writer.writerow([safe_cell(c) for c in cells])
    audit.record(session, "account.export", "account", account_id, details={"records": len(rows)})
    return out.getvalue()


def _mandate(
    session: Session, cache: dict[uuid.UUID, tuple[int, Mandate]], mandate_id: uuid.UUID
) -> Mandate:
    if mandate_id not in cache:
        row, mandate = mandate_by_id(session, mandate_id)
        cache[mandate_id] = (row.version, mandate)
    return cache[mandate_id][1]


def _purpose(mandate: Mandate, code: str) -> str:
    return next((p.label_fr for p in mandate.purposes if p.code == code), code)


def _header(name: str, field: Field | None) -> str:
    if field is None:
        return name.replace("_", " ").capitalize()
    return field.display_label_fr


def _value(value: Any, field: Field | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if field is not None and field.type is FieldType.PHONE and isinstance(value, str):
        return french_phone(value)
    if field is not None and field.type is FieldType.DATETIME and isinstance(value, str):
        try:
            return paris(dt.datetime.fromisoformat(value))
        except ValueError:
            return value
    if field is not None and field.type is FieldType.DATE and isinstance(value, str):
        try:
            return dt.date.fromisoformat(value).strftime("%d/%m/%Y")
        except ValueError:
            return value
    return str(value)


def french_phone(e164: str) -> str:
    """A French number as people write it (``06 12 34 56 78``); others as stored."""
    if e164.startswith("+33") and len(e164) == 12 and e164[3:].isdigit():
        national = "0" + e164[3:]
        return " ".join(national[i : i + 2] for i in range(0, 10, 2))
    return e164


def _open(
    keyring: Keyring,
    session: Session,
    table: str,
    row: Message | Appointment,
) -> Mapping[str, Any]:
    try:
        cipher = keyring.cipher(session, row.account_id, row.caller_id)
        value = cipher.open_json(table, "payload", row.id, row.payload_sealed)
    except KeyUnavailable:
        return {}  # the caller was erased: nothing left to give
    return value if isinstance(value, dict) else {}
