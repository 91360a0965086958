"""Every call ends in one true outcome, shown the same on the live board, the statistics API
and the month's usage CSV (issue 15). Each flow is driven by webhooks signed as the provider
signs them — Twilio's with the ``twilio`` package's RequestValidator, Telnyx's with Ed25519 —
in the order the provider sends them (docs/telephony.md, "Outcomes")."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from permanence.accounts.service import mandate_version
from permanence.calls.model import Call
from permanence.context import AccessContext
from permanence.db import utcnow
from permanence.recordings import service as recordings
from permanence.render import PARIS
from permanence.telephony.stale import resolve_stale
from tests.provider_server import ACCOUNT_SID, AUTH_TOKEN, ProviderServer
from tests.telnyx_server import ACCOUNT, API_KEY, APPLICATION, TelnyxServer
from tests.web.conftest import World

PUBLIC = "https://permanence.example"
PLUMBER_DID = "+33240000001"
CALLER = "+33639981234"
AUDIO = b"RIFF" + b"\x00" * 4000


@dataclass
class Phone:
    """The provider's side of one call: signs and posts each webhook, follows our TwiML."""

    client: TestClient
    provider: str
    sid: str
    telnyx_key: Ed25519PrivateKey | None = None

    def post(self, url: str, params: dict[str, str]):  # type: ignore[no-untyped-def]
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if self.provider == "twilio":
            signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
            return self.client.post(path, data=params, headers={"X-Twilio-Signature": signature})
        assert self.telnyx_key is not None
        body = urlencode(params).encode()
        stamp = str(int(time.time()))
        sig = base64.b64encode(self.telnyx_key.sign(stamp.encode() + b"|" + body)).decode()
        return self.client.post(
            path,
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "telnyx-signature-ed25519": sig,
                "telnyx-timestamp": stamp,
            },
        )

    def twiml(self, url: str, **extra: str) -> ET.Element:
        resp = self.post(url, {"CallSid": self.sid, "AccountSid": ACCOUNT_SID, **extra})
        assert resp.status_code == 200, resp.text
        return ET.fromstring(resp.text)  # noqa: S314 - our own reply, in a test

    def incoming(self) -> ET.Element:
        return self.twiml(
            f"{PUBLIC}/telephony/{self.provider}/incoming",
            From=CALLER,
            To=PLUMBER_DID,
            CallStatus="ringing",
            Direction="inbound",
        )

    def status(self, status: str, duration: int | None = None) -> None:
        params = {"CallSid": self.sid, "From": CALLER, "To": PLUMBER_DID, "CallStatus": status}
        if duration is not None:
            params["CallDuration"] = str(duration)
        url = f"{PUBLIC}/telephony/{self.provider}/status"
        assert self.post(url, params).status_code == 204

    def recording(
        self, url: str, rec_sid: str, provider: ProviderServer | TelnyxServer, seconds: int
    ) -> None:
        provider.recordings[rec_sid] = AUDIO
        params = {
            "CallSid": self.sid,
            "AccountSid": ACCOUNT_SID,
            "RecordingSid": rec_sid,
            "RecordingUrl": provider.recording_url(rec_sid),
            "RecordingStatus": "completed",
            "RecordingDuration": str(seconds),
        }
        assert self.post(url, params).status_code == 204


def dial_of(reply: ET.Element) -> ET.Element:
    dial = reply.find("Dial")
    assert dial is not None, ET.tostring(reply)
    return dial


def sid_for(world: World, *, recorded: bool, prefix: str = "CA") -> str:
    """A call id the plumber's sampling policy (1 call in 5) records, or not."""
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        _row, mandate = mandate_version(s, world.plumber.id)
    for i in range(1000):
        sid = f"{prefix}{i:032d}"
        if recordings.should_record(mandate, sid, utcnow()) is recorded:
            return sid
    raise AssertionError("no such sid")


# -- the flows, as the provider sends them ----------------------------------------------------


def answered_unrecorded(p: Phone, provider: ProviderServer | TelnyxServer) -> None:
    action = dial_of(p.incoming()).get("action", "")
    reply = p.twiml(
        action, DialCallStatus="completed", DialCallDuration="95", CallStatus="in-progress"
    )
    assert [el.tag for el in reply] == ["Hangup"]
    p.status("completed", 130)


def answered_recorded(p: Phone, provider: ProviderServer | TelnyxServer) -> None:
    gather = p.incoming().find("Gather")
    assert gather is not None
    dial = dial_of(p.twiml(gather.get("action", "")))
    assert dial.get("record") == "record-from-answer-dual"
    # A recorded <Dial> reports its recording on the same action: still an answered call.
    reply = p.twiml(
        dial.get("action", ""),
        DialCallStatus="completed",
        DialCallDuration="95",
        CallStatus="in-progress",
        RecordingUrl=provider.recording_url("RE" + "5" * 32),
        RecordingSid="RE" + "5" * 32,
        RecordingDuration="95",
    )
    assert [el.tag for el in reply] == ["Hangup"]
    p.recording(dial.get("recordingStatusCallback", ""), "RE" + "5" * 32, provider, 95)
    p.status("completed", 130)


def objected(p: Phone, provider: ProviderServer | TelnyxServer) -> None:
    gather = p.incoming().find("Gather")
    assert gather is not None
    dial = dial_of(p.twiml(gather.get("action", ""), Digits="9"))
    assert dial.get("record") is None
    p.twiml(dial.get("action", ""), DialCallStatus="completed", DialCallDuration="95")
    p.status("completed", 130)


def voicemail_left(p: Phone, provider: ProviderServer | TelnyxServer) -> None:
    action = dial_of(p.incoming()).get("action", "")
    reply = p.twiml(action, DialCallStatus="no-answer", CallStatus="in-progress")
    record = reply.find("Record")
    assert record is not None
    p.recording(record.get("recordingStatusCallback", ""), "RE" + "6" * 32, provider, 12)
    done = p.twiml(
        record.get("action", ""),
        RecordingUrl=provider.recording_url("RE" + "6" * 32),
        RecordingDuration="12",
        CallStatus="in-progress",
    )
    assert [el.tag for el in done] == ["Hangup"]
    p.status("completed", 60)


def voicemail_hung_up_silent(p: Phone, provider: ProviderServer | TelnyxServer) -> None:
    action = dial_of(p.incoming()).get("action", "")
    record = p.twiml(action, DialCallStatus="no-answer", CallStatus="in-progress").find("Record")
    assert record is not None
    p.twiml(record.get("action", ""), RecordingDuration="0", CallStatus="completed")
    p.status("completed", 40)


def hung_up_while_ringing(p: Phone, provider: ProviderServer | TelnyxServer) -> None:
    action = dial_of(p.incoming()).get("action", "")
    # The caller hung up: the <Dial> ends unanswered and the call itself is over.
    reply = p.twiml(action, DialCallStatus="no-answer", CallStatus="completed")
    assert [el.tag for el in reply] == ["Hangup"]  # no voicemail offered to nobody
    p.status("completed", 14)


def hung_up_during_notice(p: Phone, provider: ProviderServer | TelnyxServer) -> None:
    assert p.incoming().find("Gather") is not None
    p.status("completed", 6)


def busy(p: Phone, provider: ProviderServer | TelnyxServer) -> None:
    p.incoming()
    p.status("busy")


def lost_status_expires(p: Phone, provider: ProviderServer | TelnyxServer) -> None:
    p.incoming()  # ... and then nothing: the final status callback is lost.


def lost_status_asked_of_provider(p: Phone, provider: ProviderServer | TelnyxServer) -> None:
    action = dial_of(p.incoming()).get("action", "")
    p.twiml(action, DialCallStatus="completed", DialCallDuration="95", CallStatus="in-progress")
    provider.calls[p.sid] = ("completed", 130)  # what the REST API says; no callback came


@dataclass(frozen=True)
class Case:
    flow: Callable[[Phone, ProviderServer | TelnyxServer], None]
    recorded: bool
    outcome: str
    recording_state: str = "off"
    provider: str = "twilio"
    sweep: str | None = None  # "no-credentials" | "credentials"


CASES = {
    "answered-unrecorded": Case(answered_unrecorded, False, "answered"),
    "answered-recorded": Case(answered_recorded, True, "answered", "stored"),
    "objected": Case(objected, True, "answered", "objected"),
    "voicemail-left": Case(voicemail_left, False, "voicemail"),
    "voicemail-prompt-silent": Case(voicemail_hung_up_silent, False, "abandoned"),
    "hung-up-while-ringing": Case(hung_up_while_ringing, False, "abandoned"),
    "hung-up-during-notice": Case(hung_up_during_notice, True, "abandoned"),
    "busy": Case(busy, False, "failed"),
    "lost-final-status": Case(lost_status_expires, False, "expired", sweep="no-credentials"),
    "lost-status-provider": Case(
        lost_status_asked_of_provider, False, "answered", sweep="credentials"
    ),
    "telnyx-voicemail-left": Case(voicemail_left, False, "voicemail", provider="telnyx"),
    "telnyx-hung-up-while-ringing": Case(
        hung_up_while_ringing, False, "abandoned", provider="telnyx"
    ),
}

STATS_KEY = {o: o for o in ("answered", "voicemail", "abandoned", "failed", "expired")}
CSV_KEY = {o: f"calls_{o}" for o in STATS_KEY}


@pytest.mark.parametrize("name", list(CASES))
def test_each_flow_ends_in_one_outcome_everywhere(
    name: str, world: World, provider: ProviderServer
) -> None:
    case = CASES[name]
    rt = world.rt
    key: Ed25519PrivateKey | None = None
    if case.provider == "telnyx":
        key = Ed25519PrivateKey.generate()
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        rt.settings.telnyx_public_key = base64.b64encode(raw).decode()
    prefix = "v3:" if case.provider == "telnyx" else "CA"
    sid = sid_for(world, recorded=case.recorded, prefix=prefix)
    phone = Phone(world.client(), case.provider, sid, key)
    if case.provider == "telnyx":  # its recordings are fetched from, and deleted at, Telnyx
        telnyx = TelnyxServer().start()
        rt.settings.telnyx_api_base_url = telnyx.base_url
        rt.settings.telnyx_api_key, rt.settings.telnyx_account_sid = API_KEY, ACCOUNT
        rt.settings.telnyx_texml_application_sid = APPLICATION
        try:
            case.flow(phone, telnyx)
        finally:
            telnyx.stop()
        if case.outcome == "voicemail":
            assert telnyx.deleted == ["RE" + "6" * 32]
            assert {auth for _m, _p, auth in telnyx.requests} == {f"Bearer {API_KEY}"}
        assert provider.requests == []  # nothing asked of Twilio for a Telnyx call
    else:
        case.flow(phone, provider)
    if case.sweep is not None:
        later = utcnow() + dt.timedelta(minutes=rt.settings.telephony_stale_minutes + 1)
        if case.sweep == "no-credentials":
            rt.settings.twilio_account_sid = None
        counts = resolve_stale(rt, now=later)
        expected = "expired" if case.sweep == "no-credentials" else "resolved"
        assert counts[expected] == 1, counts
        assert resolve_stale(rt, now=later) == {"resolved": 0, "expired": 0, "still_open": 0}

    with rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        call = s.scalars(select(Call).where(Call.provider_sid == sid)).one()
        assert call.outcome == case.outcome
        assert call.recording_state == case.recording_state
        if case.outcome == "answered":
            assert call.talk_s == 95 and call.answered_at is not None
        if case.outcome == "abandoned":
            assert call.ended_at is not None and call.answered_at is None
        assert call.voicemail is (case.outcome == "voicemail")

    # The live board (supervisors): nobody waiting, the call counted once, where it belongs.
    board = world.login(world.supervisor).get("/api/v1/board").json()
    row = next(a for a in board["accounts"] if a["slug"] == "plomberie-durand")
    assert row["waiting"] == 0
    answered = case.outcome == "answered"
    assert (row["answered_last_hour"], row["missed_last_hour"]) == (
        int(answered),
        int(not answered),
    )

    # The statistics API and the month's usage CSV (the client's), the same outcome.
    client = world.login(world.client_plumber)
    st = client.get(f"/api/v1/accounts/{world.plumber.id}/stats").json()
    counts = {k: v for k, v in st["calls"].items() if v}
    assert counts == {"received": 1, STATS_KEY[case.outcome]: 1}
    if case.outcome == "answered":
        assert st["talk_time_s"]["total"] == 95
    if case.outcome == "abandoned":
        assert st["abandoned_after_s"]["average"] is not None
    month = utcnow().astimezone(PARIS).strftime("%Y-%m")
    resp = client.get(f"/api/v1/accounts/{world.plumber.id}/usage/{month}.csv")
    assert resp.status_code == 200
    usage_row = next(csv.DictReader(io.StringIO(resp.text)))
    figures = {k: int(v) for k, v in usage_row.items() if k.startswith("calls_") and int(v)}
    assert figures == {"calls_received": 1, CSV_KEY[case.outcome]: 1}
    assert int(usage_row["talk_seconds"]) == (95 if answered else 0)
