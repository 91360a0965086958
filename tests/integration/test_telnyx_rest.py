"""Telnyx's TeXML REST API as the product uses it for recordings and stale calls, against a
local server playing Telnyx (tests/telnyx_server.py): the bearer token, the paths and forms,
what counts as done (404 on delete: already gone) and what is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from permanence.config import Settings
from permanence.errors import ConfigurationError
from permanence.telephony.ports import (
    ProviderFailed,
    TelnyxTexmlApi,
    TwilioRestApi,
    configured_apis,
    provider_api,
)
from tests.telnyx_server import ACCOUNT, API_KEY, APPLICATION, TelnyxServer

CALL = "v3:" + "k" * 40
TOKEN = f"Bearer {API_KEY}"
API = f"/v2/texml/Accounts/{ACCOUNT}"


@pytest.fixture
def telnyx() -> Iterator[TelnyxServer]:
    server = TelnyxServer().start()
    try:
        yield server
    finally:
        server.stop()


def _api(server: TelnyxServer) -> TelnyxTexmlApi:
    return TelnyxTexmlApi(server.base_url, ACCOUNT, API_KEY, APPLICATION, timeout=5)


def test_a_recording_is_fetched_with_the_token_then_deleted_once(telnyx: TelnyxServer) -> None:
    audio = b"RIFF" + bytes(range(256)) * 300
    telnyx.recordings["rec-1"] = audio
    telnyx.running["rec-1"] = (CALL, "completed")
    api = _api(telnyx)
    with api.fetch_recording(telnyx.recording_url("rec-1")) as chunks:
        assert b"".join(chunks) == audio
    api.delete_recording("rec-1")
    api.delete_recording("rec-1")  # again: 404, already gone, which is the goal
    assert telnyx.deleted == ["rec-1"]
    assert telnyx.requests == [
        ("GET", "/storage/rec-1", TOKEN),  # on the configured API's host: the token goes
        ("DELETE", f"{API}/Recordings/rec-1.json", TOKEN),
        ("DELETE", f"{API}/Recordings/rec-1.json", TOKEN),
    ]


def test_a_recording_elsewhere_is_fetched_only_over_tls_and_never_with_the_token(
    telnyx: TelnyxServer,
) -> None:
    api = _api(telnyx)
    with (
        pytest.raises(ProviderFailed, match="neither on the provider API nor HTTPS"),
        api.fetch_recording("http://198.51.100.7/storage/rec-1"),
    ):
        pass
    assert telnyx.requests == []


def test_a_missing_recording_or_a_failed_delete_is_a_provider_failure(
    telnyx: TelnyxServer,
) -> None:
    api = _api(telnyx)
    with (
        pytest.raises(ProviderFailed, match=r"HTTP 404"),
        api.fetch_recording(telnyx.recording_url("gone")),
    ):
        pass
    wrong = TelnyxTexmlApi(telnyx.base_url, ACCOUNT, "not-the-key", APPLICATION, timeout=5)
    telnyx.recordings["rec-2"] = b"x"
    with pytest.raises(ProviderFailed, match=r"HTTP 401"):
        wrong.delete_recording("rec-2")
    assert telnyx.deleted == []


def test_stopping_a_recording_stops_each_one_running_on_the_call(telnyx: TelnyxServer) -> None:
    telnyx.running["rec-a"] = (CALL, "in-progress")
    telnyx.running["rec-b"] = (CALL, "completed")
    telnyx.running["rec-c"] = ("v3:other", "in-progress")
    _api(telnyx).stop_recording(CALL)
    assert telnyx.stopped == ["rec-a"]
    assert telnyx.running["rec-c"] == ("v3:other", "in-progress")
    assert [(m, p) for m, p, _a in telnyx.requests] == [
        ("GET", f"{API}/Calls/{CALL}/Recordings.json"),
        ("POST", f"{API}/Calls/{CALL}/Recordings/rec-a.json"),
    ]


def test_a_calls_status_and_duration_are_read(telnyx: TelnyxServer) -> None:
    telnyx.calls[CALL] = ("completed", 42)
    telnyx.calls["v3:ringing"] = ("ringing", None)
    api = _api(telnyx)
    assert api.call_status(CALL) == ("completed", 42)
    assert api.call_status("v3:ringing") == ("ringing", None)
    with pytest.raises(ProviderFailed, match=r"HTTP 404"):
        api.call_status("v3:unknown")


def test_each_provider_whose_credentials_are_set_has_its_api(settings: Settings) -> None:
    settings.twilio_account_sid = settings.twilio_auth_token = None
    settings.telnyx_api_key = settings.telnyx_account_sid = None
    assert configured_apis(settings) == {}
    with pytest.raises(ConfigurationError):
        provider_api(settings, "telnyx")
    settings.telnyx_api_key, settings.telnyx_account_sid = API_KEY, ACCOUNT
    settings.telnyx_texml_application_sid = APPLICATION
    assert set(configured_apis(settings)) == {"telnyx"}
    assert isinstance(provider_api(settings, "telnyx"), TelnyxTexmlApi)
    settings.twilio_account_sid, settings.twilio_auth_token = "AC" + "1" * 32, "token"
    apis = configured_apis(settings)
    assert isinstance(apis["twilio"], TwilioRestApi) and isinstance(apis["telnyx"], TelnyxTexmlApi)


def test_which_recording_urls_may_be_fetched(settings: Settings) -> None:
    from permanence.telephony.ports import recording_url_allowed

    settings.twilio_api_base_url = "https://api.twilio.com"
    settings.telnyx_api_base_url = "https://api.telnyx.com"
    twilio_url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"
    assert recording_url_allowed(settings, "twilio", twilio_url)
    assert not recording_url_allowed(settings, "twilio", "https://api.twilio.com.evil/x")
    assert not recording_url_allowed(settings, "twilio", "https://storage.example/RE1")
    assert recording_url_allowed(settings, "telnyx", "https://api.telnyx.com/v2/x/rec.wav")
    assert recording_url_allowed(settings, "telnyx", "https://storage.example/rec.wav?sig=1")
    assert not recording_url_allowed(settings, "telnyx", "http://storage.example/rec.wav")
