"""End to end, in headless Chromium: a plumber's office reads the night's messages in the
morning (issue 17). From the list alone it sees who called, their number and the first words
of each message; it ticks two and acknowledges them in one action; it exports everything to a
CSV file (a sensitive action, allowed within five minutes of signing in), and the file reads
as a French spreadsheet would (``;``, a BOM, French headers, one column per field). Timings
are printed."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest

from tests.e2e.test_browser import Browser
from tests.web.conftest import World

pytestmark = pytest.mark.slow

PLUMBER_DID = "+33240000001"
NIGHT = [  # (last name, phone as the caller gave it, what they said)
    ("Martin", "01 99 00 12 30", "Fuite sous l'évier, l'eau coule encore"),
    ("Bernard", "01 99 00 12 31", "Chaudière en panne depuis hier soir"),
    ("Petit", "01 99 00 12 32", "Robinet qui goutte, pas pressé"),
]


def _take_the_nights_messages(world: World) -> None:
    """The night operator's work, through the API an operator's console uses."""
    op = world.login(world.operator)
    base = f"/api/v1/accounts/{world.plumber.id}"
    for name, phone, said in NIGHT:
        call = op.post("/api/v1/calls", json={"dialled": PLUMBER_DID, "caller_number": phone})
        assert call.status_code == 201, call.text
        values = {
            "last_name": name,
            "phone": phone,
            "address": "3 rue des Lilas, 44000 Nantes",
            "urgency": "à planifier",
            "description": said,
        }
        r = op.post(
            f"{base}/calls/{call.json()['id']}/messages",
            json={"purpose": "intervention", "values": values},
        )
        assert r.status_code == 201, r.text


def test_the_office_reads_the_nights_messages_acknowledges_two_and_exports(
    world: World, server: str, browser: Any
) -> None:
    from playwright.sync_api import expect

    _take_the_nights_messages(world)
    timings: dict[str, float] = {}
    office = Browser(browser, server)
    page = office.page
    start = time.monotonic()
    office.sign_in(world.client_plumber)
    page.goto("/portail/messages?etat=new")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(3)
    body = page.locator("tbody")
    for name, phone, said in NIGHT:
        row = rows.filter(has_text=name)
        expect(row).to_have_count(1)
        expect(row).to_contain_text(said.split(",")[0][:20])  # the first words, from the list
        expect(row).to_contain_text(phone)
        expect(row).to_contain_text("Demande d'intervention")  # the purpose's label
        expect(row).to_contain_text("à traiter")
    expect(body).not_to_contain_text("Adresse")  # the list is not the whole message
    office.check("portal-night-messages")
    timings["read the list"] = time.monotonic() - start

    start = time.monotonic()
    for name in ("Martin", "Bernard"):
        rows.filter(has_text=name).get_by_role("checkbox").check()
    page.get_by_role("button", name="Acquitter les messages cochés").click()
    page.wait_for_load_state()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Petit")
    page.goto("/portail/messages?etat=acknowledged")
    expect(rows).to_have_count(2)
    timings["acknowledge two"] = time.monotonic() - start

    start = time.monotonic()
    page.goto("/portail/export")  # signed in moments ago: no password asked again yet
    with page.expect_download() as download:
        page.get_by_role("link", name="Télécharger le fichier CSV").click()
    raw = download.value.path().read_bytes()
    timings["export"] = time.monotonic() - start

    text = raw.decode("utf-8")
    assert text.startswith("\ufeff")  # a BOM: a spreadsheet reads it as UTF-8
    table = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff")), delimiter=";"))
    assert len(table) == 3
    assert {"Type", "Motif", "État", "Reçu le"} <= set(table[0])
    assert not any(h.startswith("{") or h in ("values", "fields") for h in table[0])
    by_name = {next(n for n, _p, _s in NIGHT if n in row.values()): row for row in table}
    assert set(by_name) == {"Martin", "Bernard", "Petit"}
    assert {by_name[n]["État"] for n in ("Martin", "Bernard")} == {"Traité"}
    assert by_name["Petit"]["État"] == "À traiter"
    assert any(v == NIGHT[1][2] for v in by_name["Bernard"].values())  # one field, one cell
    assert not office.csp_errors, office.csp_errors
    office.close()
    print(
        "\nthe office's morning: "
        + ", ".join(f"{step} {seconds:.2f} s" for step, seconds in timings.items())
    )
