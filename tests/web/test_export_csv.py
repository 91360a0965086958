"""The client's export opens in a spreadsheet: one column per field of the purpose, French
headers, Paris time, and no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import datetime as dt
import io

from permanence.messages import service as messages
from permanence.messages.model import Message
from permanence.spreadsheet import safe_cell
from tests.factories import ctx_for, make_caller
from tests.web.conftest import World
from tests.web.pages_helpers import page_login

# What a caller could dictate, or an operator type, to turn a cell into a formula.
HOSTILE = {
    "last_name": '=HYPERLINK("http://evil.example","clic")',
    "phone": "+33 6 12 34 56 78",  # stored as +33612345678
    "address": "@SUM(1+1)*cmd|' /C calc'!A0",
    "urgency": "à planifier",
    "description": "-2+3",
}


def _rows(text: str) -> list[dict[str, str]]:
    assert text.startswith("\ufeff")  # the byte-order mark a spreadsheet needs to read UTF-8
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff")), delimiter=";"))


def test_the_export_has_a_column_per_field_in_french_and_no_formula(world: World) -> None:
    caller = make_caller(world.rt, world.plumber.id, last="Lemoine", phone="06 12 34 56 78")
    taken = dt.datetime(2026, 1, 15, 8, 30, tzinfo=dt.UTC)  # 09:30 in Paris (winter)
    with world.rt.db.session(ctx_for(world.plumber.id)) as s:
        hostile = messages.take_message(
            s,
            world.rt.keyring,
            caller_id=caller,
            purpose="intervention",
            values=HOSTILE,
            urgent=True,
        )
        foreign = messages.take_message(
            s,
            world.rt.keyring,
            caller_id=caller,
            purpose="intervention",
            values={**HOSTILE, "phone": "+44 20 7946 0958"},
        )
        plain = messages.take_message(
            s,
            world.rt.keyring,
            caller_id=caller,
            purpose="intervention",
            values={**HOSTILE, "last_name": "Lemoine"},
        )
        s.get(Message, hostile.id).created_at = taken  # type: ignore[union-attr]
    client, _csrf = page_login(world, world.client_plumber)  # signing in is fresh enough

    r = client.get("/portail/export.csv")

    assert r.status_code == 200, r.text
    rows = _rows(r.text)
    header = list(rows[0].keys())
    assert header[:6] == ["Type", "Identifiant", "Motif", "État", "Urgent", "Reçu le"]
    # The purpose's fields, each in its own column under its French label.
    for label in ("Nom", "Téléphone", "Adresse de l'intervention", "Urgence"):
        assert label in header, header
    assert not any(h in header for h in ("fields", "last_name", "address"))
    first = next(row for row in rows if row["Identifiant"] == str(hostile.id))
    assert first["Type"] == "Message" and first["Motif"] == "Demande d'intervention"
    assert first["État"] == "À traiter" and first["Urgent"] == "oui"
    assert first["Reçu le"] == "15/01/2026 09:30"
    # Every cell that would start a formula is neutralised by a leading apostrophe.
    assert first["Nom"] == "'" + HOSTILE["last_name"]
    assert first["Téléphone"] == "06 12 34 56 78"  # as people write it, so no "+" to guard
    assert first["Adresse de l'intervention"] == "'" + HOSTILE["address"]
    abroad = next(row for row in rows if row["Identifiant"] == str(foreign.id))
    assert abroad["Téléphone"] == "'+442079460958"
    second = next(row for row in rows if row["Identifiant"] == str(plain.id))
    assert second["Nom"] == "Lemoine" and second["Urgent"] == "non"
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    assert first["Description du problème"] == "'-2+3"
    # The services strip leading whitespace from values; the guard covers it all the same.
    assert [safe_cell(v) for v in ("\tx", "\rx", "x=1")] == ["'\tx", "'\rx", "x=1"]
