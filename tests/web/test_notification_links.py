"""The link in a new-message e-mail opens that message for the client's user (it once led to a
404: the e-mail said /portal/, the pages live under /portail/)."""

from __future__ import annotations

import re

from permanence.config import Settings
from permanence.delivery.worker import Channels, run_due
from tests.conftest import SmtpSink
from tests.web.conftest import World
from tests.web.pages_helpers import page_login

PLUMBER_DID = "+33240000001"
TAKE = {
    "purpose": "intervention",
    "values": {
        "last_name": "Lemaire",
        "phone": "06 11 22 33 44",
        "address": "3 rue des Lilas, 44000 Nantes",
        "urgency": "à planifier",
        "description": "Fuite sous l'évier",
    },
}


def test_the_e_mailed_link_opens_the_message_in_the_portal(
    world: World, settings: Settings, smtp: SmtpSink
) -> None:
    settings.public_base_url = "https://permanence.example"
    op = world.login(world.operator)
    call = op.post("/api/v1/calls", json={"dialled": PLUMBER_DID, "caller_number": "0611223344"})
    assert call.status_code == 201, call.text
    url = f"/api/v1/accounts/{world.plumber.id}/calls/{call.json()['id']}/messages"
    taken = op.post(url, json=TAKE)
    assert taken.status_code == 201, taken.text
    assert run_due(world.rt, channels=Channels.from_settings(settings))["sent"] >= 1
    links = [
        m.group(1)
        for body in smtp.bodies()
        if (m := re.search(r"https://permanence\.example(/\S+)", body))
    ]
    assert links, smtp.bodies()
    client, _ = page_login(world, world.client_plumber)
    for link in links:
        page = client.get(link)
        assert page.status_code == 200, link
        assert "Fuite sous l" in page.text
