"""One journey, in headless Chromium (issue 15): a voicemail left through webhooks signed by
the ``twilio`` package shows in the operator console (with its count) and in the client
portal; the client plays it (the ``<audio>`` element loads it and reports its duration);
a trained operator hears it with a reason and writes it down as a message in one step; the
voicemail is then treated, in the console and in the portal."""

from __future__ import annotations

import io
import math
import re
import struct
import wave
from typing import Any

import pytest
from sqlalchemy import select

from permanence.context import AccessContext
from permanence.messages.model import Message
from permanence.recordings.model import Recording
from tests.e2e.conftest import CALLER_ADDRESS, CALLER_NAME, CALLER_PHONE
from tests.e2e.test_browser import Browser
from tests.provider_server import ProviderServer
from tests.web.conftest import World
from tests.web.test_call_outcomes import Phone, dial_of, sid_for

pytestmark = pytest.mark.slow

REC_SID = "RE" + "8" * 32


def tiny_wav(seconds: float = 1.5, rate: int = 8000) -> bytes:
    """A short, valid WAV file (a 440 Hz tone): what the provider would serve."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
            for i in range(int(seconds * rate))
        )
        w.writeframes(frames)
    return buf.getvalue()


def leave_voicemail(world: World, provider: ProviderServer) -> None:
    phone = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    action = dial_of(phone.incoming()).get("action", "")
    record = phone.twiml(action, DialCallStatus="no-answer", CallStatus="in-progress").find(
        "Record"
    )
    assert record is not None
    provider.recordings[REC_SID] = tiny_wav()
    phone.post(
        record.get("recordingStatusCallback", ""),
        {
            "CallSid": phone.sid,
            "RecordingSid": REC_SID,
            "RecordingUrl": provider.recording_url(REC_SID),
            "RecordingStatus": "completed",
            "RecordingDuration": "2",
        },
    )
    phone.twiml(
        record.get("action", ""),
        RecordingUrl=provider.recording_url(REC_SID),
        RecordingDuration="2",
        CallStatus="in-progress",
    )
    phone.status("completed", 40)


def audio_duration(page: Any) -> float:
    page.wait_for_function(
        "() => { const a = document.querySelector('audio');"
        " return a && a.readyState >= 1 && isFinite(a.duration) && a.duration > 0; }",
        timeout=15_000,
    )
    return float(page.evaluate("() => document.querySelector('audio').duration"))


def test_a_voicemail_reaches_the_console_and_the_portal_and_is_written_down(
    world: World, server: str, browser: Any, provider: ProviderServer
) -> None:
    from playwright.sync_api import expect

    leave_voicemail(world, provider)
    assert provider.deleted == [REC_SID]  # fetched, stored here, deleted at the provider

    # -- the client sees it in the portal's voicemail tab and plays it
    client = Browser(browser, server)
    client.sign_in(world.client_plumber)
    cp = client.page
    cp.get_by_role("link", name="Messagerie vocale").click()
    expect(cp.get_by_role("heading", name="Messagerie vocale")).to_be_visible()
    expect(cp.get_by_role("link", name="À traiter (1)")).to_be_visible()
    assert 1.4 < audio_duration(cp) < 1.6
    client.check("portal-voicemails")

    # -- the operator sees the count in the console, listens with a reason
    op = Browser(browser, server)
    op.sign_in(world.operator)
    page = op.page
    expect(page.get_by_text("1 nouveau message vocal")).to_be_visible()
    page.get_by_role("link", name="Plomberie Durand").click()
    heading = page.get_by_role("heading", name="Nouveaux messages vocaux pour Plomberie Durand")
    expect(heading).to_be_visible()
    expect(page.locator("section.voicemail")).to_contain_text("+33639981234")
    page.get_by_label("Pourquoi vous l'écoutez").select_option("prise-de-message")
    page.get_by_role("button", name="Écouter").click()
    page.wait_for_url(re.compile(r"raison=prise-de-message"))
    assert 1.4 < audio_duration(page) < 1.6
    op.check()

    # -- and writes it down as a message under a purpose, in one step
    page.get_by_role("link", name="Demande d'intervention").click()
    page.wait_for_url(re.compile(r"\?motif=intervention&messagerie=[0-9a-f-]{36}$"))
    expect(page.get_by_text("Ce message retranscrit un message vocal")).to_be_visible()
    page.get_by_label("Nom").fill(CALLER_NAME)
    page.get_by_label("Téléphone").fill(CALLER_PHONE)
    page.get_by_label("Adresse de l'intervention").fill(CALLER_ADDRESS)
    page.get_by_label("Urgence").select_option("sous 48 heures")
    page.get_by_label("Description du problème").fill("Message vocal : rappeler le client.")
    page.get_by_role("button", name="Enregistrer le message").click()
    page.wait_for_url(re.compile(r"/console/messagerie-vocale/[0-9a-f-]{36}\?enregistre="))
    expect(page.get_by_text("Aucun nouveau message vocal.")).to_be_visible()

    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        rec = s.scalars(select(Recording).where(Recording.kind == "voicemail")).one()
        msg = s.scalars(select(Message).where(Message.voicemail_id == rec.id)).one()
        assert rec.treated_by == world.operator.id and msg.purpose == "intervention"

    # -- the portal shows it treated, and the message it became
    cp.goto("/portail/messagerie-vocale?etat=treated")
    expect(cp.locator("tbody tr")).to_contain_text("traité")
    cp.goto("/portail/messages")
    expect(cp.get_by_text("Demande d'intervention")).to_be_visible()
    for b in (client, op):
        assert not b.csp_errors, b.csp_errors
        b.close()
