"""The callers' notice on the phone, as Twilio would play it: webhooks signed by twilio's own
RequestValidator, replies parsed as XML (and compared with twilio's TwiML classes), the SMS
gateway played by the local fake of the provider's REST API (its Messages endpoint).

A caller presses the SMS key → the ledger sends an SMS with the link → the link serves the
notice of the mandate version pinned on the call; a caller presses the English key and hears
the English notice; without a gateway the caller is told to ask for the address."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html import unescape

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.twiml.voice_response import VoiceResponse

from permanence.accounts.service import account_by_slug, import_mandate
from permanence.audit.model import AuditEntry
from permanence.calls.model import Call
from permanence.context import AccessContext
from permanence.delivery.model import Channel, Delivery
from permanence.delivery.worker import Channels, run_due
from permanence.runtime import Runtime
from permanence.web.app import create_app
from tests.factories import demo_mandate_text, make_account
from tests.integration.test_telephony import (
    CALLER,
    PUBLIC,
    follow,
    incoming,
    plumber_sid,
)
from tests.provider_server import ACCOUNT_SID, AUTH_TOKEN, ProviderServer

SMS_FROM = "+33700000099"


def _with_keys(text: str) -> str:
    """The plumber's mandate offering the SMS key (1) and English (2), and saying so."""
    text = text.replace(
        'version: "2025-02"', 'version: "2025-02"\n  sms_key: "1"\n  english_key: "2"', 1
    )
    text = text.replace("si vous le souhaitez.", "si vous le souhaitez : appuyez sur 1.", 1)
    return text.replace("by text message.", "by text message: press 1.", 1)


@pytest.fixture
def client(rt: Runtime, provider: ProviderServer) -> Iterator[TestClient]:
    plumber = make_account(rt, "plomberie-durand")
    with rt.db.session(AccessContext.system("test", plumber.id)) as s:
        import_mandate(s, _with_keys(demo_mandate_text("plomberie-durand")), account_id=plumber.id)
    rt.settings.sms_gateway_url = provider.sms_url()
    rt.settings.sms_from = SMS_FROM
    rt.settings.sms_user = ACCOUNT_SID
    rt.settings.sms_password = AUTH_TOKEN
    with TestClient(create_app(rt)) as c:
        yield c


def _call(rt: Runtime, sid: str) -> Call:
    with rt.db.session(AccessContext.system("test")) as s:
        account = account_by_slug(s, "plomberie-durand")
    with rt.db.session(AccessContext.system("test", account.id)) as s:
        call = s.scalars(select(Call).where(Call.provider_sid == sid)).one()
        s.expunge(call)
        return call


def _deliveries(rt: Runtime, call: Call) -> list[Delivery]:
    with rt.db.session(AccessContext.system("test", call.account_id)) as s:
        rows = list(s.scalars(select(Delivery).where(Delivery.message_id == call.id)))
        for r in rows:
            s.expunge(r)
        return rows


def _says(el: ET.Element) -> list[tuple[str, str]]:
    return [(s.get("language", ""), s.text or "") for s in el.iter("Say")]


def _gather_url(el: ET.Element) -> str:
    gather = el.find("Gather")
    assert gather is not None, ET.tostring(el)
    return gather.attrib["action"]


def test_the_sms_key_sends_the_notice_of_the_pinned_version(
    client: TestClient, rt: Runtime, provider: ProviderServer
) -> None:
    sid = plumber_sid(rt, recorded=False)
    first = incoming(client, sid)
    # Not recorded, but keys to offer: the notice is said inside a <Gather>, English offered.
    says = _says(first)
    assert says[0] == ("en-GB", "For English, press 2.")
    assert says[1][0] == "fr-FR" and "appuyez sur 1" in says[1][1]
    assert first.find("Dial") is None
    pressed = follow(client, _gather_url(first), sid, Digits="1")
    assert _says(pressed) == [("fr-FR", "Le détail vous est envoyé par SMS.")]
    assert pressed.find("Dial") is not None  # then on to the operators, not recorded
    assert pressed.find("Dial").get("record") is None  # type: ignore[union-attr]
    call = _call(rt, sid)
    assert call.notice_sms_version == 2 and call.notice_sms_at is not None
    [queued] = _deliveries(rt, call)
    assert queued.channel == Channel.NOTICE_SMS and queued.status == "pending"
    # The worker sends it through the gateway; the fake gateway has it.
    counts = run_due(rt, channels=Channels.from_settings(rt.settings))
    assert counts["sent"] == 1
    [(to, sender, body)] = provider.sms
    assert (to, sender) == (CALLER, SMS_FROM)
    with rt.db.session(AccessContext.system("test")) as s:
        name = account_by_slug(s, "plomberie-durand").name
    link = f"{PUBLIC}/n/plomberie-durand/2"
    assert body == f"{name} : {link}"  # the client's name and the link, nothing else
    assert _deliveries(rt, call)[0].status == "sent"
    # The link serves the notice of version 2 (the one pinned on the call), Art. 13 complete.
    page = client.get(link.removeprefix(PUBLIC))
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", page.text)))
    for words in ("2:2025-02", "Plomberie Durand", "article 6(1)(b)", "CNIL", "6 mois"):
        assert words in text, words
    # Audited with the version and how it was asked, never the number.
    with rt.db.session(AccessContext.system("test")) as s:
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "call.notice_sms"))
        flat = entry.body
    assert '"version":2' in flat.replace(" ", "") and "keypress" in flat
    assert CALLER not in flat and CALLER[3:] not in flat
    # A second press does not send it twice.
    again = incoming(client, sid)  # a retried webhook finds the same call
    follow(client, _gather_url(again), sid, Digits="1")
    assert len(_deliveries(rt, call)) == 1


def test_a_gateway_failure_is_retried_and_visible_in_the_ledger(
    client: TestClient, rt: Runtime, provider: ProviderServer
) -> None:
    sid = plumber_sid(rt, recorded=False)
    follow(client, _gather_url(incoming(client, sid)), sid, Digits="1")
    provider.sms_fail_next = [503]
    channels = Channels.from_settings(rt.settings)
    assert run_due(rt, channels=channels)["retrying"] == 1
    [row] = _deliveries(rt, _call(rt, sid))
    assert row.status == "pending" and row.last_error == "sms_http_503"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert run_due(rt, now=later, channels=channels)["sent"] == 1
    assert len(provider.sms) == 1


def test_the_english_key_speaks_the_english_notice_and_the_call_records_it(
    client: TestClient, rt: Runtime, provider: ProviderServer
) -> None:
    sid = plumber_sid(rt, recorded=True)
    first = incoming(client, sid)
    english = follow(client, _gather_url(first), sid, Digits="2")
    says = _says(english)
    # The notice as twilio's own TwiML classes write it: both sentences in British English,
    # inside the <Gather> that still offers the objection key.
    peer = VoiceResponse()
    gather = peer.gather(num_digits=1)
    gather.say(says[0][1], language="en-GB")
    gather.say(says[1][1], language="en-GB")
    assert says == _says(ET.fromstring(str(peer)))  # noqa: S314 - twilio's output, in a test
    assert english.find("Gather/Say") is not None
    assert says[0][1].startswith("Plomberie Durand, good morning")
    assert "press 9 during this message" in says[1][1]
    assert _call(rt, sid).language == "en"
    # No key: the recording notice was heard whole; the operators are dialled, recorded.
    dialled = follow(client, _gather_url(english), sid)
    assert dialled.find("Dial").get("record") == "record-from-answer-dual"  # type: ignore[union-attr]
    # The SMS key now answers in English, and the link asks for the English notice.
    sid2 = plumber_sid(rt, recorded=False)
    en = follow(client, _gather_url(incoming(client, sid2)), sid2, Digits="2")
    sent = follow(client, _gather_url(en), sid2, Digits="1")
    assert _says(sent) == [("en-GB", "The full details are being sent to you by text message.")]
    run_due(rt, channels=Channels.from_settings(rt.settings))
    [(_to, _from, body)] = provider.sms
    assert body.endswith("/n/plomberie-durand/2?lang=en")
    assert "Call-out request" in client.get("/n/plomberie-durand/2?lang=en").text


def test_without_a_gateway_the_caller_is_told_to_ask_for_the_address(
    client: TestClient, rt: Runtime, provider: ProviderServer
) -> None:
    rt.settings.sms_gateway_url = None
    sid = plumber_sid(rt, recorded=False)
    pressed = follow(client, _gather_url(incoming(client, sid)), sid, Digits="1")
    [(lang, said)] = _says(pressed)
    assert lang == "fr-FR" and "demandez l'adresse" in said
    assert _deliveries(rt, _call(rt, sid)) == [] and _call(rt, sid).notice_sms_at is None
    assert pressed.find("Dial") is not None
