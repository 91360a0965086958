"""Recordings over HTTP: an authorised, audited listen that streams the audio intact; the
operator's stop button reaches the provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from permanence.context import AccessContext, Role
from permanence.recordings.model import Recording
from permanence.runtime import Runtime
from permanence.web.app import create_app
from tests.factories import make_account
from tests.integration.test_telephony import ACCOUNT_SID, AUDIO, _recorded_call, post, the_call
from tests.provider_server import ProviderServer
from tests.web.conftest import PASSWORD, Person, make_person


@pytest.fixture
def client(rt: Runtime, provider: ProviderServer) -> Iterator[TestClient]:
    make_account(rt, "plomberie-durand")
    make_account(rt, "cabinet-lefevre")
    with TestClient(create_app(rt)) as c:
        yield c


def _login(client: TestClient, who: Person) -> dict[str, str]:
    r = client.post(
        "/api/v1/auth/login", json={"email": who.email, "password": PASSWORD, "totp": who.code()}
    )
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf_token"]}


def test_listen_streams_the_audio_to_a_supervisor_not_to_an_operator(
    client: TestClient, rt: Runtime, provider: ProviderServer
) -> None:
    sid, callback = _recorded_call(client, rt)
    provider.recordings["RE" + "4" * 32] = AUDIO
    params = {
        "CallSid": sid,
        "AccountSid": ACCOUNT_SID,
        "RecordingSid": "RE" + "4" * 32,
        "RecordingUrl": provider.recording_url("RE" + "4" * 32),
        "RecordingStatus": "completed",
    }
    assert post(client, callback, params).status_code == 204
    call = the_call(rt, sid)
    with rt.db.session(AccessContext.system("test", call.account_id), readonly=True) as s:
        rec_id = s.scalars(select(Recording.id)).one()
    url = f"/api/v1/accounts/{call.account_id}/recordings/{rec_id}/audio"
    assert client.get(url).status_code == 401
    operator = make_person(rt, Role.OPERATOR, "op.rec@permanence.example")
    _login(client, operator)
    assert client.get(url).status_code == 403
    supervisor = make_person(rt, Role.SUPERVISOR, "sup.rec@permanence.example")
    _login(client, supervisor)
    r = client.get(url)
    assert r.status_code == 200
    assert r.content == AUDIO
    assert r.headers["cache-control"] == "no-store"


def test_stop_button_over_http(client: TestClient, rt: Runtime, provider: ProviderServer) -> None:
    sid, _callback = _recorded_call(client, rt)
    call = the_call(rt, sid)
    operator = make_person(rt, Role.OPERATOR, "op.stop@permanence.example")
    headers = _login(client, operator)
    r = client.post(
        f"/api/v1/accounts/{call.account_id}/calls/{call.id}/recording/stop", headers=headers
    )
    assert r.status_code == 204, r.text
    assert provider.stopped == [sid]
