"""Voice webhooks end to end: signed with twilio's RequestValidator (the independent peer),
replies parsed as XML, the provider's REST API played by a local HTTP server."""

from __future__ import annotations

import os
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from permanence.accounts.service import account_by_slug, list_accounts, mandate_version
from permanence.audit.model import AuditEntry
from permanence.calls.model import Call
from permanence.context import AccessContext, Role
from permanence.filestore import LocalStore
from permanence.recordings import provider_hooks
from permanence.recordings import service as recordings
from permanence.recordings.model import Recording, RecordingDownload
from permanence.runtime import Runtime
from permanence.telephony import service as telephony
from permanence.telephony.ports import TwilioRestApi
from permanence.web.app import create_app
from tests.factories import ctx_for, make_account
from tests.provider_server import ACCOUNT_SID, AUTH_TOKEN, ProviderServer

PUBLIC = "https://permanence.example"
PLUMBER_DID = "+33240000001"
CALLER = "+33639981234"


@pytest.fixture
def client(rt: Runtime, provider: ProviderServer) -> Iterator[TestClient]:
    make_account(rt, "plomberie-durand")
    make_account(rt, "cabinet-lefevre")
    with TestClient(create_app(rt)) as c:
        yield c


def post(client: TestClient, url: str, params: dict[str, str], *, token: str = AUTH_TOKEN):  # type: ignore[no-untyped-def]
    """POST a webhook to ``url`` (absolute, public) signed by twilio's own validator."""
    signature = RequestValidator(token).compute_signature(url, params)
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def xml(resp) -> ET.Element:  # type: ignore[no-untyped-def]
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/xml")
    return ET.fromstring(resp.text)  # noqa: S314 - our own reply, in a test


def plumber_sid(rt: Runtime, *, recorded: bool) -> str:
    """A CallSid that the plumber's sampling policy (1 call in 5) records, or not."""
    with rt.db.session(AccessContext.system("test")) as s:
        account = account_by_slug(s, "plomberie-durand")
    with rt.db.session(ctx_for(account.id)) as s:
        _row, mandate = mandate_version(s, account.id)
    for i in range(1000):
        sid = f"CA{i:032d}"
        if recordings.should_record(mandate, sid, telephony.utcnow()) is recorded:
            return sid
    raise AssertionError("no such sid")


def incoming(client: TestClient, sid: str, to: str = PLUMBER_DID) -> ET.Element:
    return xml(
        post(
            client,
            f"{PUBLIC}/telephony/twilio/incoming",
            {
                "CallSid": sid,
                "AccountSid": ACCOUNT_SID,
                "From": CALLER,
                "To": to,
                "CallStatus": "ringing",
                "Direction": "inbound",
                "ApiVersion": "2010-04-01",
            },
        )
    )


def follow(client: TestClient, url: str, sid: str, **extra: str) -> ET.Element:
    return xml(post(client, url, {"CallSid": sid, "AccountSid": ACCOUNT_SID, **extra}))


def count(rt: Runtime, model: type) -> int:
    """Rows of ``model`` over every account (each read under its account: RLS on PostgreSQL)."""
    with rt.db.session(AccessContext.system("test")) as s:
        accounts = [a.id for a in list_accounts(s)]
        if not hasattr(model, "account_id"):  # a shared table (the audit log)
            return int(s.scalar(select(func.count()).select_from(model)) or 0)
    total = 0
    for account_id in accounts:
        with rt.db.session(AccessContext.system("test", account_id)) as s:
            q = select(func.count()).select_from(model).where(model.account_id == account_id)  # type: ignore[attr-defined]
            total += int(s.scalar(q) or 0)
    return total


def the_call(rt: Runtime, sid: str) -> Call:
    with rt.db.session(AccessContext.system("test")) as s:
        account = account_by_slug(s, "plomberie-durand")
    with rt.db.session(ctx_for(account.id, Role.SUPERVISOR)) as s:
        call = s.scalars(select(Call).where(Call.provider_sid == sid)).one()
        s.expunge(call)
        return call


@pytest.mark.gdpr("CNIL recording")
def test_notice_is_said_before_any_recording_and_the_objection_key_is_offered(
    client: TestClient, rt: Runtime
) -> None:
    sid = plumber_sid(rt, recorded=True)
    reply = incoming(client, sid)
    verbs = [el.tag for el in reply]
    assert verbs == ["Gather", "Redirect"]  # nothing is dialled, so nothing recorded, yet
    gather = reply[0]
    said = [el.text or "" for el in gather.iter("Say")]
    assert all(el.get("language") == "fr-FR" for el in gather.iter("Say"))
    assert said[0].startswith("Plomberie Durand, bonjour")
    assert "appuyez sur la touche 9" in said[1]
    assert gather.get("numDigits") == "1"
    assert not list(reply.iter("Dial")) and not list(reply.iter("Record"))
    assert gather.get("action") == reply[1].text

    # No key pressed: the call is offered to the operators, recorded from the answer.
    dial = follow(client, gather.get("action", ""), sid).find("Dial")
    assert dial is not None
    assert dial.get("record") == "record-from-answer-dual"
    assert (dial.findtext("Client") or "") == "operators"
    assert the_call(rt, sid).recording_state == "recording"


@pytest.mark.gdpr("CNIL recording")
def test_pressing_the_objection_key_dials_without_recording(
    client: TestClient, rt: Runtime
) -> None:
    sid = plumber_sid(rt, recorded=True)
    action = incoming(client, sid)[0].get("action", "")
    reply = follow(client, action, sid, Digits="9")
    dial = reply.find("Dial")
    assert dial is not None
    assert dial.get("record") is None and dial.get("recordingStatusCallback") is None
    assert the_call(rt, sid).recording_state == "objected"


def test_other_keys_cannot_skip_the_recording_notice(client: TestClient, rt: Runtime) -> None:
    sid = plumber_sid(rt, recorded=True)
    action = incoming(client, sid)[0].get("action", "")
    # Another key during the notice dials nothing: the recording notice is said again, whole.
    again = follow(client, action, sid, Digits="5")
    assert [el.tag for el in again] == ["Gather", "Redirect"]
    assert not list(again.iter("Dial"))
    said = [el.text or "" for el in again.iter("Say")]
    assert len(said) == 1 and "appuyez sur la touche 9" in said[0]
    assert the_call(rt, sid).recording_state == "offered"
    # Heard whole this time (no key): the call is offered, recorded.
    dial = follow(client, again[0].get("action", ""), sid).find("Dial")
    assert dial is not None and dial.get("record") == "record-from-answer-dual"
    assert the_call(rt, sid).recording_state == "recording"


def test_the_objection_key_still_acts_on_a_repeated_notice(client: TestClient, rt: Runtime) -> None:
    sid = plumber_sid(rt, recorded=True)
    action = incoming(client, sid)[0].get("action", "")
    again = follow(client, action, sid, Digits="#")[0].get("action", "")
    dial = follow(client, again, sid, Digits="9").find("Dial")
    assert dial is not None and dial.get("record") is None
    assert the_call(rt, sid).recording_state == "objected"


def test_a_caller_who_keeps_pressing_keys_is_not_recorded(client: TestClient, rt: Runtime) -> None:
    sid = plumber_sid(rt, recorded=True)
    action = incoming(client, sid)[0].get("action", "")
    for _ in range(telephony.NOTICE_REPEATS):
        reply = follow(client, action, sid, Digits="1")
        assert not list(reply.iter("Dial"))
        action = reply[0].get("action", "")
    dial = follow(client, action, sid, Digits="1").find("Dial")
    assert dial is not None and dial.get("record") is None  # never heard whole: not recorded
    assert the_call(rt, sid).recording_state == "off"


def test_call_outside_the_sample_is_dialled_after_the_notice_without_recording(
    client: TestClient, rt: Runtime
) -> None:
    sid = plumber_sid(rt, recorded=False)
    reply = incoming(client, sid)
    assert [el.tag for el in reply] == ["Say", "Dial"]
    assert reply[1].get("record") is None


@pytest.mark.gdpr("Art. 25")
def test_medical_line_never_records(client: TestClient, rt: Runtime) -> None:
    reply = incoming(client, "CA" + "7" * 32, to="+33478000001")
    assert [el.tag for el in reply] == ["Say", "Dial"]
    assert (reply[0].text or "").startswith("Cabinet du docteur Lefèvre")
    assert reply[1].get("record") is None


def test_bad_signature_gets_403_and_changes_nothing(client: TestClient, rt: Runtime) -> None:
    calls_before, audit_before = count(rt, Call), count(rt, AuditEntry)
    params = {"CallSid": "CA" + "1" * 32, "From": CALLER, "To": PLUMBER_DID}
    url = f"{PUBLIC}/telephony/twilio/incoming"
    wrong = post(client, url, params, token="not-the-token")
    unsigned = client.post("/telephony/twilio/incoming", data=params)
    # Signed for another host: the URL is rebuilt from configuration, not from the request.
    other_host = post(client, "http://testserver/telephony/twilio/incoming", params)
    for resp in (wrong, unsigned, other_host):
        assert resp.status_code == 403
        assert CALLER not in resp.text
    assert (count(rt, Call), count(rt, AuditEntry)) == (calls_before, audit_before)


def test_malformed_or_oversized_bodies_are_refused_clearly(client: TestClient) -> None:
    big = client.post(
        "/telephony/twilio/incoming",
        content=b"CallSid=" + b"A" * 20000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert big.status_code == 413
    json_body = client.post("/telephony/twilio/incoming", json={"CallSid": "CA1"})
    assert json_body.status_code == 415
    missing_to = post(client, f"{PUBLIC}/telephony/twilio/incoming", {"CallSid": "CA" + "2" * 32})
    assert missing_to.status_code == 422
    assert "To" in missing_to.json()["message"]


def test_unassigned_number_is_told_so_and_nothing_is_stored(
    client: TestClient, rt: Runtime
) -> None:
    reply = incoming(client, "CA" + "3" * 32, to="+33199001111")
    assert [el.tag for el in reply] == ["Say", "Hangup"]
    assert count(rt, Call) == 0


def test_retried_incoming_webhook_does_not_open_a_second_call(
    client: TestClient, rt: Runtime
) -> None:
    sid = plumber_sid(rt, recorded=False)
    incoming(client, sid)
    incoming(client, sid)
    assert count(rt, Call) == 1


def test_status_callbacks_build_the_call_record(client: TestClient, rt: Runtime) -> None:
    sid = plumber_sid(rt, recorded=False)
    incoming(client, sid)
    url = f"{PUBLIC}/telephony/twilio/status"
    base = {"CallSid": sid, "AccountSid": ACCOUNT_SID, "From": CALLER, "To": PLUMBER_DID}
    assert post(client, url, {**base, "CallStatus": "in-progress"}).status_code == 204
    done = {**base, "CallStatus": "completed", "CallDuration": "95"}
    assert post(client, url, done).status_code == 204
    late = post(client, url, {**base, "CallStatus": "ringing"})  # out of order: ignored
    assert late.status_code == 204
    call = the_call(rt, sid)
    assert (call.status, call.duration_s, call.ended_reason) == ("completed", 95, "completed")
    # "in-progress" is the provider answering to run our TwiML, not an operator: nobody
    # took this call (no <Dial> action said so), so the caller abandoned it.
    assert call.answered_at is None and call.ended_at is not None
    assert call.outcome == "abandoned"


def test_nobody_answers_so_the_caller_gets_voicemail(client: TestClient, rt: Runtime) -> None:
    sid = plumber_sid(rt, recorded=False)
    dial_action = incoming(client, sid).find("Dial")
    assert dial_action is not None
    reply = follow(client, dial_action.get("action", ""), sid, DialCallStatus="no-answer")
    assert [el.tag for el in reply] == ["Say", "Record"]
    assert reply[1].get("maxLength") == "120"
    call = the_call(rt, sid)
    # Offered, not yet left: only audio makes a voicemail (tests/integration/test_call_outcomes.py).
    assert not call.voicemail and call.ended_reason == "no-answer" and call.outcome is None


def _recorded_call(client: TestClient, rt: Runtime) -> tuple[str, str]:
    """A recorded call up to the recording callback; returns (CallSid, callback URL)."""
    sid = plumber_sid(rt, recorded=True)
    action = incoming(client, sid)[0].get("action", "")
    dial = follow(client, action, sid).find("Dial")
    assert dial is not None
    return sid, dial.get("recordingStatusCallback", "")


AUDIO = b"RIFF" + os.urandom(300_000) + b"voix de l'appelant"


def test_recording_is_fetched_encrypted_deleted_at_provider_and_plays_back_intact(
    client: TestClient, rt: Runtime, provider: ProviderServer
) -> None:
    sid, callback = _recorded_call(client, rt)
    provider.recordings["RE" + "1" * 32] = AUDIO
    params = {
        "CallSid": sid,
        "AccountSid": ACCOUNT_SID,
        "RecordingSid": "RE" + "1" * 32,
        "RecordingUrl": provider.recording_url("RE" + "1" * 32),
        "RecordingStatus": "completed",
        "RecordingDuration": "42",
    }
    assert post(client, callback, params).status_code == 204
    assert provider.deleted == ["RE" + "1" * 32]
    assert all(authorised for _m, _p, authorised in provider.requests)

    call = the_call(rt, sid)
    assert call.recording_state == "stored"
    with rt.db.session(ctx_for(call.account_id, Role.SUPERVISOR, reason="quality-review")) as s:
        rec = s.scalars(select(Recording)).one()
        stored = (rt.settings.recordings_dir / rec.storage_key).read_bytes()
        assert AUDIO[:4096] not in stored and b"voix de l'appelant" not in stored
        assert rec.duration_s == 42 and rec.provider_deleted_at is not None
        playback = recordings.open_playback(
            s, rt.keyring, LocalStore(rt.settings.recordings_dir), rec.id
        )
    assert b"".join(playback.chunks) == AUDIO
    with rt.db.session(AccessContext.system("test")) as s:
        listens = s.scalars(select(AuditEntry).where(AuditEntry.action == "recording.listen")).all()
    assert len(listens) == 1 and "quality-review" in listens[0].body

    # A retried callback stores nothing twice.
    assert post(client, callback, params).status_code == 204
    assert count(rt, Recording) == 1


def test_operators_cannot_listen_and_other_accounts_do_not_see_it(
    client: TestClient, rt: Runtime, provider: ProviderServer
) -> None:
    sid, callback = _recorded_call(client, rt)
    provider.recordings["RE" + "2" * 32] = AUDIO
    post(
        client,
        callback,
        {
            "CallSid": sid,
            "RecordingSid": "RE" + "2" * 32,
            "RecordingUrl": provider.recording_url("RE" + "2" * 32),
            "RecordingStatus": "completed",
        },
    )
    call = the_call(rt, sid)
    store = LocalStore(rt.settings.recordings_dir)
    with rt.db.session(ctx_for(call.account_id, Role.SUPERVISOR)) as s:
        rec_id = s.scalars(select(Recording.id)).one()
    from permanence.errors import NotFound, PermissionDenied

    with pytest.raises(PermissionDenied), rt.db.session(ctx_for(call.account_id)) as s:
        recordings.open_playback(s, rt.keyring, store, rec_id)
    with rt.db.session(AccessContext.system("test")) as s:
        other = account_by_slug(s, "cabinet-lefevre")
    with pytest.raises(NotFound), rt.db.session(ctx_for(other.id, Role.SUPERVISOR)) as s:
        recordings.open_playback(s, rt.keyring, store, rec_id)


def test_operator_stop_button_stops_at_provider_and_the_audio_is_discarded(
    client: TestClient, rt: Runtime, provider: ProviderServer
) -> None:
    sid, callback = _recorded_call(client, rt)
    call = the_call(rt, sid)
    api = TwilioRestApi.from_settings(rt.settings)
    stopped = provider_hooks.stop_recording(
        rt, lambda _provider: api, ctx_for(call.account_id), call.id
    )
    assert stopped is True
    assert provider.stopped == [sid]
    provider.recordings["RE" + "3" * 32] = AUDIO
    params = {
        "CallSid": sid,
        "RecordingSid": "RE" + "3" * 32,
        "RecordingUrl": provider.recording_url("RE" + "3" * 32),
        "RecordingStatus": "completed",
    }
    assert post(client, callback, params).status_code == 204
    assert count(rt, Recording) == 0
    assert provider.deleted == ["RE" + "3" * 32]
    assert not [r for r in provider.requests if r[0] == "GET"]  # never even downloaded
    assert not any(rt.settings.recordings_dir.rglob("*.pmr"))


def test_recording_url_outside_the_provider_api_is_not_fetched(
    client: TestClient, rt: Runtime, provider: ProviderServer
) -> None:
    sid, callback = _recorded_call(client, rt)
    params = {
        "CallSid": sid,
        "RecordingSid": "RE" + "4" * 32,
        "RecordingUrl": "http://127.0.0.1:9/elsewhere",
        "RecordingStatus": "completed",
    }
    resp = post(client, callback, params)
    assert resp.status_code == 422  # refused before anything is queued
    assert "not on the configured provider API" in resp.json()["message"]
    assert count(rt, Recording) == 0 and count(rt, RecordingDownload) == 0
    assert not provider.requests
    assert not any(rt.settings.recordings_dir.rglob("*.pmr"))


def test_follow_up_urls_carry_only_pseudonymous_ids(client: TestClient, rt: Runtime) -> None:
    sid = plumber_sid(rt, recorded=True)
    action = incoming(client, sid)[0].get("action", "")
    query = parse_qs(urlsplit(action).query)
    assert set(query) == {"a", "c"}
    uuid.UUID(query["a"][0]), uuid.UUID(query["c"][0])
    assert CALLER not in action
