"""The arrival decision through the voice webhooks, signed by twilio's RequestValidator: in
hours the operators' leg, out of hours the greeting then voicemail (recorded), closed on a
holiday, forwarded to the on-call contact in force. Replies parsed as XML; every verb and
attribute asserted; the decision and the outcome read back from the call."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from permanence.accounts.service import account_by_slug, import_mandate
from permanence.audit.model import AuditEntry
from permanence.calls import hours as routing
from permanence.calls.model import Call
from permanence.context import AccessContext, Role
from permanence.recordings.model import Recording
from permanence.render import PARIS
from permanence.runtime import Runtime
from permanence.stats import service as stats
from permanence.web.app import create_app
from tests.factories import ctx_for, demo_mandate_text, make_account
from tests.integration.test_telephony import PUBLIC, follow, incoming, post
from tests.provider_server import ACCOUNT_SID, ProviderServer

LEFEVRE_DID = "+33478000001"
MOREAU_DID = "+33140000001"
PLUMBER_DID = "+33240000001"
Arrive = Callable[[str], None]
AUDIO = b"RIFF" + b"\x00" * 20_000 + b"message after hours"


@pytest.fixture
def client(rt: Runtime, provider: ProviderServer) -> Iterator[TestClient]:
    for slug in ("plomberie-durand", "cabinet-lefevre", "cabinet-moreau-avocats"):
        make_account(rt, slug)
    with TestClient(create_app(rt)) as c:
        yield c


@pytest.fixture
def arrive_at(monkeypatch: pytest.MonkeyPatch) -> Arrive:
    """Calls arrive at the given UTC moment (``YYYY-MM-DD HH:MM``)."""

    def pin(text: str) -> None:
        moment = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
        monkeypatch.setattr(routing, "clock", lambda: moment)

    return pin


def the_call(rt: Runtime, slug: str, sid: str) -> Call:
    with rt.db.session(AccessContext.system("test")) as s:
        account = account_by_slug(s, slug)
    with rt.db.session(ctx_for(account.id, Role.SUPERVISOR)) as s:
        call = s.scalars(select(Call).where(Call.provider_sid == sid)).one()
        s.expunge(call)
        return call


def routed(rt: Runtime, call: Call) -> dict[str, object]:
    """The details of the call's ``call.routed`` audit entry."""
    with rt.db.session(AccessContext.system("test")) as s:
        bodies = s.scalars(select(AuditEntry.body).where(AuditEntry.action == "call.routed"))
        found = [json.loads(b) for b in bodies]
    [body] = [b for b in found if b["object"] == f"call:{call.id}"]
    return dict(body["details"])


def says(el: ET.Element) -> tuple[str, str]:
    assert el.tag == "Say"
    return el.get("language", ""), el.text or ""


def test_in_hours_the_call_goes_to_the_operators(
    client: TestClient, rt: Runtime, arrive_at: Arrive
) -> None:
    arrive_at("2026-12-08 09:00")  # Tuesday 10:00 in Paris
    sid = "CA" + "1" * 32
    reply = incoming(client, sid, to=LEFEVRE_DID)
    assert [el.tag for el in reply] == ["Say", "Dial"]
    assert says(reply[0])[1].startswith("Cabinet du docteur Lefèvre, bonjour")
    dial = reply[1]
    assert dial.findtext("Client") == "operators" and dial.get("record") is None
    call = the_call(rt, "cabinet-lefevre", sid)
    assert (call.routing, call.routing_contact) == (routing.IN_HOURS, None)
    assert routed(rt, call) == {"routing": "in_hours", "reason": "schedule"}


def test_out_of_hours_greeting_then_voicemail_is_recorded(
    client: TestClient, rt: Runtime, provider: ProviderServer, arrive_at: Arrive
) -> None:
    arrive_at("2026-12-08 19:30")  # Tuesday 20:30 in Paris: the practice is closed
    sid = "CA" + "2" * 32
    reply = incoming(client, sid, to=LEFEVRE_DID)
    assert [el.tag for el in reply] == ["Say", "Say", "Say", "Record"]
    lang, greeting = says(reply[0])
    assert lang == "fr-FR" and "composez le 15" in greeting
    assert greeting.startswith("Le cabinet du docteur Lefèvre est fermé.")
    lang, greeting_en = says(reply[1])
    assert lang == "en-GB" and "dial 15" in greeting_en
    assert says(reply[2])[1].startswith("Cabinet du docteur Lefèvre, bonjour")  # the notice
    assert not list(reply.iter("Dial"))  # nobody is rung
    record = reply[3]
    call = the_call(rt, "cabinet-lefevre", sid)
    ids = f"a={call.account_id}&c={call.id}"
    assert record.attrib == {
        "action": f"{PUBLIC}/telephony/twilio/dial-done?{ids}&step=voicemail",
        "method": "POST",
        "maxLength": "120",
        "playBeep": "true",
        "recordingStatusCallback": f"{PUBLIC}/telephony/twilio/recording?{ids}&k=voicemail",
        "recordingStatusCallbackMethod": "POST",
    }
    assert call.routing == routing.AFTER_HOURS_VOICEMAIL and call.recording_state == "off"
    assert routed(rt, call) == {"routing": "after_hours_voicemail", "reason": "schedule"}

    # The caller speaks; the <Record> action, then the recording callback, as Twilio sends them.
    provider.recordings["RE" + "2" * 32] = AUDIO
    done = follow(
        client,
        record.get("action", ""),
        sid,
        RecordingUrl=provider.recording_url("RE" + "2" * 32),
        RecordingDuration="14",
    )
    assert [el.tag for el in done] == ["Hangup"]
    params = {
        "CallSid": sid,
        "AccountSid": ACCOUNT_SID,
        "RecordingSid": "RE" + "2" * 32,
        "RecordingUrl": provider.recording_url("RE" + "2" * 32),
        "RecordingStatus": "completed",
        "RecordingDuration": "14",
    }
    assert post(client, record.get("recordingStatusCallback", ""), params).status_code == 204
    call = the_call(rt, "cabinet-lefevre", sid)
    assert call.voicemail and call.outcome == "voicemail"
    with rt.db.session(ctx_for(call.account_id, Role.SUPERVISOR)) as s:
        kept = s.scalars(select(Recording).where(Recording.call_id == call.id)).one()
        assert (kept.kind, kept.duration_s) == ("voicemail", 14)


def test_a_holiday_is_closed(client: TestClient, rt: Runtime, arrive_at: Arrive) -> None:
    arrive_at("2026-12-25 09:00")  # Friday 25 December, 10:00: office hours, but Christmas
    sid = "CA" + "3" * 32
    reply = incoming(client, sid, to=MOREAU_DID)
    assert [el.tag for el in reply] == ["Say", "Say", "Say", "Record"]
    assert says(reply[0])[1].startswith("Le cabinet Moreau et Associés est fermé.")
    call = the_call(rt, "cabinet-moreau-avocats", sid)
    assert call.routing == routing.AFTER_HOURS_VOICEMAIL
    assert routed(rt, call) == {"routing": "after_hours_voicemail", "reason": "holiday"}
    # The same moment a week before is an ordinary Friday: the operators.
    arrive_at("2026-12-18 09:00")
    reply = incoming(client, "CA" + "4" * 32, to=MOREAU_DID)
    assert [el.tag for el in reply] == ["Say", "Dial"]


@pytest.mark.parametrize(
    ("moment", "contact", "number"),
    [
        ("2026-12-08 19:30", 0, "+33600000003"),  # Tuesday 20:30: Marc
        ("2026-12-09 01:30", 1, "+33600000004"),  # Wednesday 02:30: Julien (since 22:00)
        ("2026-12-12 10:00", 2, "+33600000005"),  # Saturday 11:00: Sophie
        ("2026-12-25 09:00", 3, "+33600000003"),  # Christmas Day: the holiday rota
    ],
)
def test_out_of_hours_the_plumber_forwards_to_the_contact_in_force(
    client: TestClient,
    rt: Runtime,
    arrive_at: Arrive,
    moment: str,
    contact: int,
    number: str,
) -> None:
    arrive_at(moment)
    sid = "CA" + "5" * 32
    reply = incoming(client, sid, to=PLUMBER_DID)
    # Never recorded: the objection notice is not even offered.
    assert [el.tag for el in reply] == ["Say", "Say", "Dial"]
    assert says(reply[0])[1].startswith("Plomberie Durand, bonjour")
    assert says(reply[1]) == (
        "fr-FR",
        "Nos bureaux sont fermés ; nous vous mettons en relation avec le plombier d'astreinte.",
    )
    dial = reply[2]
    call = the_call(rt, "plomberie-durand", sid)
    assert dial.attrib == {
        "action": f"{PUBLIC}/telephony/twilio/dial-done?a={call.account_id}&c={call.id}",
        "method": "POST",
        "timeout": str(rt.settings.telephony_ring_seconds),
    }
    assert [(el.tag, el.text) for el in dial] == [("Number", number)]
    assert (call.routing, call.routing_contact) == (routing.AFTER_HOURS_FORWARD, contact)
    assert call.recording_state == "off"

    # The contact answers and talks 95 s: the call is answered, by the on-call contact.
    done = follow(
        client, dial.get("action", ""), sid, DialCallStatus="completed", DialCallDuration="95"
    )
    assert [el.tag for el in done] == ["Hangup"]
    call = the_call(rt, "plomberie-durand", sid)
    assert (call.outcome, call.talk_s, call.operator_id) == ("answered", 95, None)


def test_an_on_call_contact_who_does_not_answer_leads_to_voicemail(
    client: TestClient, rt: Runtime, arrive_at: Arrive
) -> None:
    arrive_at("2026-12-08 19:30")
    sid = "CA" + "6" * 32
    dial = incoming(client, sid, to=PLUMBER_DID).find("Dial")
    assert dial is not None
    reply = follow(client, dial.get("action", ""), sid, DialCallStatus="no-answer")
    assert [el.tag for el in reply] == ["Say", "Record"]
    assert "laissez votre message" in says(reply[0])[1].lower()


def test_nobody_on_call_means_voicemail_and_after_hours_calls_are_counted(
    client: TestClient, rt: Runtime, arrive_at: Arrive
) -> None:
    arrive_at("2027-07-14 08:00")  # Wednesday 14 July 2027, 10:00: nobody is on call
    reply = incoming(client, "CA" + "7" * 32, to=PLUMBER_DID)
    assert [el.tag for el in reply] == ["Say", "Say", "Record"]
    assert says(reply[0])[1].startswith("Nous sommes actuellement fermés.")  # the default
    assert says(reply[1])[1].startswith("Plomberie Durand, bonjour")
    call = the_call(rt, "plomberie-durand", "CA" + "7" * 32)
    assert routed(rt, call) == {"routing": "after_hours_voicemail", "reason": "no_on_call"}
    arrive_at("2026-12-08 19:30")
    incoming(client, "CA" + "8" * 32, to=PLUMBER_DID)
    arrive_at("2026-12-08 09:00")
    incoming(client, "CA" + "9" * 32, to=PLUMBER_DID)

    with rt.db.session(ctx_for(call.account_id, Role.SUPERVISOR)) as s:
        today = dt.datetime.now(PARIS).date()  # the statistics count whole days in Paris
        figures = stats.account_statistics(
            s, call.account_id, stats.Period.of(today - dt.timedelta(days=1), today)
        ).as_dict()
    assert figures["calls"]["received"] == 3
    assert figures["after_hours"] == {"total": 2, "voicemail": 1, "forward": 1, "answer": 0}


def test_out_of_hours_a_caller_choosing_english_hears_the_english_greeting(
    client: TestClient, rt: Runtime, arrive_at: Arrive
) -> None:
    """With the mandate's English key the greeting is said inside the <Gather>, in French,
    then in English once the caller chose it; no key: voicemail."""
    text = demo_mandate_text("cabinet-lefevre").replace(
        'version: "2025-01"', 'version: "2025-01"\n  english_key: "2"', 1
    )
    with rt.db.session(AccessContext.system("test")) as s:
        account = account_by_slug(s, "cabinet-lefevre")
    with rt.db.session(AccessContext.system("test", account.id)) as s:
        import_mandate(s, text, account_id=account.id)
    arrive_at("2026-12-12 10:00")  # Saturday
    sid = "CA" + "a" * 32
    reply = incoming(client, sid, to=LEFEVRE_DID)
    assert [el.tag for el in reply] == ["Gather", "Redirect"]
    gather = reply[0]
    said = [says(el) for el in gather]
    assert [lang for lang, _ in said] == ["fr-FR", "en-GB", "fr-FR"]
    assert said[0][1].startswith("Le cabinet du docteur Lefèvre est fermé.")
    assert said[1][1] == "For English, press 2."
    assert said[2][1].startswith("Cabinet du docteur Lefèvre, bonjour")
    english = follow(client, gather.get("action", ""), sid, Digits="2")
    assert [el.tag for el in english] == ["Gather", "Redirect"]
    said = [says(el) for el in english[0]]
    assert said[0][0] == "en-GB" and said[0][1].startswith(
        "Dr Lefèvre's practice is closed. In a medical emergency, hang up and dial 15."
    )
    assert said[1][1].startswith("Dr Lefèvre's practice, good morning.")
    last = follow(client, english[1].text or "", sid)
    assert [el.tag for el in last] == ["Record"]
    assert the_call(rt, "cabinet-lefevre", sid).language == "en"
