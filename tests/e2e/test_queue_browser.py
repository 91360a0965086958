"""The screen pop follows the queue (issue 16), in headless Chromium: the operator makes
themselves available in the console; a call comes in through webhooks signed by the
``twilio`` package, waits in the queue and is offered to their device through the REST API
(the local provider server); when they answer and the provider connects the caller, their
console opens that call's screen by itself — no click, no reload — and from it they pass the
caller on to a recipient the mandate declares (cold transfer), the form checked by axe-core in
French and in English."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.test_browser import Browser
from tests.provider_server import ProviderServer
from tests.web.conftest import World
from tests.web.test_call_outcomes import Phone, sid_for
from tests.web.test_queue_routing import DEVICES, first, queue_world, queued, wait

pytestmark = pytest.mark.slow
__all__ = ["queue_world"]  # the fixture, shared with the webhook tests


def test_the_operators_console_opens_the_call_they_answered_by_itself(
    queue_world: World, server: str, browser: Any, provider: ProviderServer
) -> None:
    from playwright.sync_api import expect

    world = queue_world
    op = Browser(browser, server)
    op.sign_in(world.operator)
    page = op.page
    page.goto("/console")
    presence = page.get_by_role("region", name="Ma disponibilité")
    expect(presence).to_be_visible()
    presence.get_by_role("button", name="Disponible").click()
    page.wait_for_url(re.compile(r"/console$"))
    expect(page.locator("#presence-etat")).to_contain_text("Disponible (depuis")
    op.check()

    phone = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    enqueue = queued(phone)
    wait(phone, enqueue)
    assert [c["To"] for c in provider.created_calls] == [DEVICES["operator"]]
    offer = provider.created_calls[0]
    leg = Phone(world.client(), "twilio", provider.created_sid(0))
    leg.post(offer["StatusCallback"], {"CallSid": leg.sid, "CallStatus": "ringing"})
    expect(page.locator("#presence-etat")).to_contain_text("Un appel sonne sur votre ligne.")
    assert page.url.endswith("/console")

    reply = leg.twiml(offer["Url"], CallStatus="in-progress")
    queue_el = first(first(reply, "Dial"), "Queue")
    phone.twiml(queue_el.get("url", ""), DequeuingCallSid=leg.sid, QueueTime="9")

    # The console opens the call's screen by itself.
    page.wait_for_url(
        re.compile(rf"/console/appels/{world.plumber.id}/[0-9a-f-]{{36}}$"), timeout=15_000
    )
    expect(page.get_by_role("heading", name="Appel pour Plomberie Durand")).to_be_visible()

    # From the screen pop, a cold transfer to a recipient the mandate declares: the form with
    # its recipients listed, checked in French, then in English (the language link, back to
    # this screen), from which the transfer is made.
    call_screen = page.url
    expect(page.get_by_label("Marc Durand")).to_be_checked()
    op.check()
    page.get_by_role("link", name="English").click()
    page.wait_for_url(call_screen)
    assert page.locator("html").get_attribute("lang") == "en"
    expect(page.get_by_role("heading", name="Call for Plomberie Durand")).to_be_visible()
    recipients = page.get_by_role("group", name="Recipients the mandate declares")
    expect(recipients.get_by_label("Marc Durand")).to_be_checked()
    op.check()
    page.get_by_role("button", name="Transfer (cold)").click()
    page.wait_for_url(re.compile(r"/console\?transfert=1$"))
    assert [sid for sid, _form in provider.call_updates] == [phone.sid]
    assert not op.csp_errors, op.csp_errors
    op.close()
