"""Hearing a recording over the API: one helper (recordings/api.py ``played``) serves the call
recording's route and the voicemail's. It checks that the recording is what the route says:
a call's recording is heard through its own route, never through the voicemail route."""

from __future__ import annotations

import uuid

from permanence.calls.model import Call
from permanence.context import AccessContext
from tests.web.conftest import World
from tests.web.test_isolation_matrix import _stored_recording


def test_a_call_recording_is_heard_through_its_route_and_is_no_voicemail(world: World) -> None:
    op = world.login(world.operator)
    call = op.post(
        "/api/v1/calls", json={"dialled": "+33240000001", "caller_number": "0199001234"}
    ).json()
    with world.rt.db.session(AccessContext.system("test", world.plumber.id), readonly=True) as s:
        row = s.get(Call, uuid.UUID(call["id"]))
        assert row is not None and row.caller_id is not None
        caller_id = str(row.caller_id)
    recording = _stored_recording(world, call["id"], caller_id)
    client = world.login(world.client_plumber)
    base = f"/api/v1/accounts/{world.plumber.id}"

    heard = client.get(f"{base}/recordings/{recording}/audio")
    assert heard.status_code == 200, heard.text
    assert heard.content == b"RIFF audio"
    assert heard.headers["cache-control"] == "no-store"
    assert heard.headers["content-length"] == str(len(b"RIFF audio"))

    as_voicemail = client.get(f"{base}/voicemails/{recording}/audio")
    assert as_voicemail.status_code == 404, as_voicemail.text
