"""End to end, in headless Chromium: an operator takes five calls in a row with the keyboard
only, at the call-centre console (the queue beside the current call). Known callers are
pre-filled, wait times count up, a new call is signalled (title, tab icon) while the operator
is on another call's page, a session that expires mid-message is recovered by signing in again
in place and the message is saved. axe-core checks every console page; the timings are printed;
the wide console is photographed (docs/screenshots with PERMANENCE_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import pytest
from sqlalchemy import select, update

from permanence.audit.model import AuditEntry
from permanence.calls import service as calls
from permanence.context import AccessContext, Role
from permanence.messages.model import Appointment, Message
from permanence.staff.model import WebSession
from tests.e2e.conftest import CALLER_ADDRESS, CALLER_DESCRIPTION, CALLER_NAME, CALLER_PHONE
from tests.e2e.test_browser import Browser
from tests.factories import ctx_for, make_caller
from tests.web.conftest import PASSWORD, World

pytestmark = pytest.mark.slow

PLUMBER_DID, MEDICAL_DID = "+33240000001", "+33478000001"
NOTE = "Merci de rappeler pour le renouvellement."


def ring(world: World, dialled: str) -> None:
    """A call arrives, as the telephony webhook would open it (the known caller's number)."""
    with world.rt.db.session(AccessContext(role=Role.SYSTEM, reason="test:telephony")) as s:
        calls.open_call(s, world.rt.keyring, dialled=dialled, caller_number=CALLER_PHONE)


def expire_sessions(world: World) -> None:
    """The operator walked away: their session is past the idle timeout."""
    with world.rt.db.session(AccessContext.system("test")) as s:
        s.execute(
            update(WebSession)
            .where(WebSession.user_id == world.operator.id)
            .values(last_seen_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
        )


def count(world: World, model: Any, account_id: Any) -> int:
    with world.rt.db.session(ctx_for(account_id), readonly=True) as s:  # row-level security
        return len(list(s.scalars(select(model).where(model.account_id == account_id))))


def test_an_operator_takes_five_calls_in_a_row_with_the_keyboard(
    world: World, server: str, browser: Any
) -> None:
    from playwright.sync_api import expect

    make_caller(world.rt, world.plumber.id, first="Jeanne", last=CALLER_NAME, phone=CALLER_PHONE)
    make_caller(world.rt, world.medical.id, first="Jeanne", last=CALLER_NAME, phone=CALLER_PHONE)
    op = Browser(browser, server)
    op.context.close()
    op.context = browser.new_context(
        base_url=server, locale="fr-FR", viewport={"width": 1600, "height": 1000}
    )
    op.page = op.context.new_page()
    page = op.page
    page.on("framenavigated", lambda f: op.urls.append(f.url) if f == page.main_frame else None)
    page.on(
        "console",
        lambda m: (
            op.csp_errors.append(page.url + " " + m.text[:60])
            if "Content Security Policy" in m.text
            else None
        ),
    )
    loads: list[str] = []
    page.on("load", lambda: loads.append(page.url))
    op.sign_in(world.operator)
    expect(page.get_by_role("heading", name="Console", exact=True)).to_be_visible()
    timings: list[tuple[str, float]] = []

    def take_next(expect_account: str) -> float:
        """Alt+Q takes the first call of the queue; the screen pop opens beside the queue."""
        expect(page.get_by_role("heading", name="Console", exact=True)).to_be_visible()
        expect(page.locator("#file-attente button").first).to_be_visible(timeout=10_000)
        started = time.monotonic()
        page.keyboard.press("Alt+q")
        expect(page.get_by_role("heading", name=f"Appel pour {expect_account}")).to_be_visible()
        return started

    # -- call 1: the queue is alive: the call appears, its wait time counts up
    ring(world, PLUMBER_DID)
    expect(page.get_by_text("1 appel en attente")).to_be_visible(timeout=10_000)
    clock = page.locator("#file-attente .clock").first
    first_reading = clock.inner_text()
    page.wait_for_timeout(2100)
    assert clock.inner_text() != first_reading, "the wait time does not count up"
    assert re.fullmatch(r"\d+ min \d\d s", clock.inner_text())
    assert page.title().startswith("(1) ")
    assert page.locator('link[rel="icon"]').get_attribute("href") == "/static/favicon-alert.svg"
    op.check("console")
    loads_before = len(loads)

    started = take_next("Plomberie Durand")
    # The queue stays in view beside the call (the call-centre layout).
    expect(page.locator("aside #file-attente")).to_be_visible()
    page.keyboard.press("Alt+1")
    expect(page.get_by_role("heading", name="Demande d'intervention")).to_be_visible()
    # The known caller is pre-filled; the focus is on the first empty field.
    expect(page.locator("#f_last_name")).to_have_value(CALLER_NAME)
    expect(page.locator("#f_phone")).to_have_value("+33612345678")
    address = page.get_by_label("Adresse de l'intervention")
    expect(address).to_be_focused()
    page.keyboard.type(CALLER_ADDRESS)
    page.keyboard.press("Tab")
    page.keyboard.press("ArrowDown")  # the urgency list: its first choice
    page.keyboard.press("Tab")
    page.keyboard.type(CALLER_DESCRIPTION)
    page.keyboard.press("Alt+s")
    expect(page.get_by_text("Message enregistré.")).to_be_visible()
    op.check("console-call")
    page.keyboard.press("Alt+t")
    expect(page.get_by_role("heading", name="Console", exact=True)).to_be_visible()
    timings.append(("1 message, known caller", time.monotonic() - started))
    # No console action reloaded the page (htmx swaps; the stream and the clock lived on).
    assert len(loads) == loads_before, loads[loads_before:]

    # -- call 2 (medical: a priority account), and call 3 signalled while on call 2's page
    ring(world, MEDICAL_DID)
    expect(page.locator("#file-attente li.priority")).to_have_count(1, timeout=10_000)
    started = take_next("Cabinet Lefevre")
    expect(page.locator("#consignes")).to_contain_text("Dr Claire")  # on-call contact / hours
    expect(page.get_by_text("1 appel en attente")).to_have_count(0)
    assert not page.title().startswith("(")
    page.keyboard.press("Alt+2")
    expect(page.get_by_label("Message pour le docteur")).to_be_focused()
    ring(world, PLUMBER_DID)  # the next call arrives while the operator is on this one
    expect(page.locator("aside").get_by_text("1 appel en attente")).to_be_visible(timeout=10_000)
    expect(page).to_have_title(re.compile(r"^\(1\) "))
    assert page.locator('link[rel="icon"]').get_attribute("href") == "/static/favicon-alert.svg"
    expect(page.locator("#file-attente li.new")).to_have_count(1)
    page.keyboard.type(NOTE)
    page.keyboard.press("Alt+s")
    expect(page.get_by_text("Message enregistré.")).to_be_visible()
    page.keyboard.press("Alt+t")
    timings.append(("2 message, new call signalled meanwhile", time.monotonic() - started))

    # -- call 3 (plumber), the caller's history opened by a reasoned read, then an appointment
    started = take_next("Plomberie Durand")
    history = page.locator("#historique")
    history.get_by_label("Motif").select_option("follow_up")
    history.get_by_role("button", name="Afficher l’historique").click()
    expect(page.locator("#historique")).to_contain_text("Demande d'intervention")
    # the appointment purpose: the slot is asked once (a free slot, picked from the list)
    page.keyboard.press("Alt+2")  # Rendez-vous pour un devis
    expect(page.locator("#f_address")).to_be_focused()
    expect(page.locator("input[name=f_preferred_slot]")).to_have_count(0)
    page.keyboard.type(CALLER_ADDRESS)
    page.keyboard.press("Tab")
    page.keyboard.press("ArrowDown")  # the first free slot
    page.keyboard.press("Alt+s")
    expect(page.get_by_text("Rendez-vous pris.")).to_be_visible()
    page.keyboard.press("Alt+t")
    timings.append(("3 history read, appointment", time.monotonic() - started))
    assert count(world, Appointment, world.plumber.id) == 1

    # -- call 4: the session expires mid-message; signing in again in place saves it
    ring(world, MEDICAL_DID)
    expect(page.get_by_text("1 appel en attente")).to_be_visible(timeout=10_000)
    started = take_next("Cabinet Lefevre")
    page.keyboard.press("Alt+2")
    expect(page.get_by_label("Message pour le docteur")).to_be_focused()
    page.keyboard.type(NOTE)
    expire_sessions(world)
    before = count(world, Message, world.medical.id)
    page.keyboard.press("Alt+s")
    expect(page.get_by_role("heading", name="Reconnectez-vous")).to_be_visible()
    assert count(world, Message, world.medical.id) == before  # nothing saved yet
    op.check()
    expect(page.get_by_label("Adresse électronique")).to_be_focused()
    page.keyboard.type(world.operator.email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    page.keyboard.type(world.operator.code() or "")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Message enregistré.")).to_be_visible()
    expect(page.locator("#reconnecte")).to_be_visible()
    assert count(world, Message, world.medical.id) == before + 1
    page.keyboard.press("Alt+t")
    timings.append(("4 session expired, recovered", time.monotonic() - started))

    # -- call 5: a plain message again, on the renewed session
    ring(world, PLUMBER_DID)
    expect(page.get_by_text("1 appel en attente")).to_be_visible(timeout=10_000)
    started = take_next("Plomberie Durand")
    page.keyboard.press("Alt+1")
    expect(page.get_by_label("Adresse de l'intervention")).to_be_focused()
    page.keyboard.type(CALLER_ADDRESS)
    page.keyboard.press("Tab")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")
    page.keyboard.type(CALLER_DESCRIPTION)
    page.keyboard.press("Alt+s")
    expect(page.get_by_text("Message enregistré.")).to_be_visible()
    page.keyboard.press("Alt+t")
    expect(page.get_by_role("heading", name="Console", exact=True)).to_be_visible()
    timings.append(("5 message", time.monotonic() - started))
    assert count(world, Message, world.plumber.id) == 2
    op.check()

    # The history read was audited with its reason, naming the caller, not their data.
    with world.rt.db.session(AccessContext.system("test"), readonly=True) as s:
        reads = list(
            s.scalars(select(AuditEntry).where(AuditEntry.action == "subject.history_read"))
        )
    assert len(reads) == 1 and "follow_up" in reads[0].body

    # No page with personal data is kept in the browser's storage (htmx's history cache is
    # off; an operator's workstation is shared).
    stored = page.evaluate(
        "JSON.stringify([Object.assign({}, localStorage), Object.assign({}, sessionStorage)])"
    )
    assert CALLER_NAME not in stored and "htmx-history-cache" not in stored
    for text in op.urls + op.titles:
        assert CALLER_NAME not in text and "612345678" not in text.replace(" ", "")
    assert not op.csp_errors, op.csp_errors
    print("\nfive calls in a row (seconds from Alt+Q to the call ended):")
    for what, seconds in timings:
        print(f"  {what:<42} {seconds:5.2f}")
    print(f"  {'total':<42} {sum(s for _, s in timings):5.2f}")
    op.close()


def test_the_console_on_a_narrow_screen_is_one_column(
    world: World, server: str, browser: Any
) -> None:
    from playwright.sync_api import expect

    ring(world, PLUMBER_DID)
    op = Browser(browser, server)
    op.page.set_viewport_size({"width": 420, "height": 900})
    op.sign_in(world.operator)
    page = op.page
    expect(page.get_by_text("1 appel en attente")).to_be_visible()
    # Both boxes in one read: the presence poll may reflow the side column between two reads.
    side, main = page.evaluate(
        """() => ['.console-side', '.console-main'].map(s => {
            const r = document.querySelector(s).getBoundingClientRect();
            return {y: r.y, height: r.height};
        })"""
    )
    assert side and main and main["y"] >= side["y"] + side["height"] - 1  # stacked
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    op.check("console-narrow")
    # The optional sound is off by default; the operator's choice is remembered.
    sound = page.get_by_label("Signal sonore à l’arrivée d’un appel")
    expect(sound).not_to_be_checked()
    sound.check()
    page.reload()
    expect(page.get_by_label("Signal sonore à l’arrivée d’un appel")).to_be_checked()
    op.close()
