"""Voicemails reach a person (issue 15): a voicemail left through signed webhooks is fetched
by the download worker (retrying a provider that fails), announced to the account's
recipients through the delivery ledger (a real SMTP server; no personal data), listed in
the inbox API, heard by the client and by trained operators (audited with a reason), turned
into a message in one step and treated; another account sees none of it."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid

from sqlalchemy import select

from permanence.audit.model import AuditEntry
from permanence.compliance.checks import run_checks
from permanence.context import AccessContext, Role
from permanence.db import utcnow
from permanence.delivery.worker import run_due as run_deliveries
from permanence.messages.model import Message
from permanence.recordings import downloads
from permanence.recordings.model import Recording, RecordingDownload
from permanence.render import PARIS
from permanence.telephony.ports import TwilioRestApi
from tests.conftest import SmtpSink
from tests.provider_server import ACCOUNT_SID, AUTH_TOKEN, ProviderServer
from tests.web.conftest import World, make_person
from tests.web.isolation import assert_hidden
from tests.web.test_call_outcomes import AUDIO, CALLER, Phone, dial_of, sid_for

REC_SID = "RE" + "7" * 32


WRITTEN_DOWN = {
    "purpose": "intervention",
    "values": {
        "last_name": "Martin",
        "phone": "06 12 34 56 78",
        "address": "1 rue A, 44000 Nantes",
        "urgency": "à planifier",
        "description": "Fuite signalée sur la messagerie",
    },
}


def leave_voicemail(world: World, provider: ProviderServer, *, fail: list[int]) -> Phone:
    """A call nobody answers; the caller leaves 12 s of audio; the provider first fails."""
    phone = Phone(world.client(), "twilio", sid_for(world, recorded=False))
    action = dial_of(phone.incoming()).get("action", "")
    record = phone.twiml(action, DialCallStatus="no-answer", CallStatus="in-progress").find(
        "Record"
    )
    assert record is not None
    provider.fail_next = list(fail)
    phone.recording(record.get("recordingStatusCallback", ""), REC_SID, provider, 12)
    phone.twiml(
        record.get("action", ""),
        RecordingUrl=provider.recording_url(REC_SID),
        RecordingDuration="12",
        CallStatus="in-progress",
    )
    phone.status("completed", 60)
    return phone


def job(world: World) -> RecordingDownload:
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        row = s.scalars(select(RecordingDownload)).one()
        s.expunge(row)
        return row


def audit_bodies(world: World, action: str) -> list[str]:
    with world.rt.db.session(AccessContext.system("test")) as s:
        return [e.body for e in s.scalars(select(AuditEntry).where(AuditEntry.action == action))]


def test_failed_then_successful_download_and_the_inbox_journey(
    world: World, provider: ProviderServer, smtp: SmtpSink
) -> None:
    rt = world.rt
    api = TwilioRestApi(provider.base_url, ACCOUNT_SID, AUTH_TOKEN, timeout=0.5)
    # The callback is answered at once; the immediate attempt meets a 503.
    leave_voicemail(world, provider, fail=[503, 0])
    first = job(world)
    assert (first.state, first.attempts, first.last_error) == ("pending", 1, "http_503")
    assert REC_SID in provider.recordings and not provider.deleted
    client = world.login(world.client_plumber)
    inbox = client.get(f"/api/v1/accounts/{world.plumber.id}/voicemails").json()
    assert inbox == {"new": 0, "voicemails": []}  # nothing to hear yet
    # Not due before its backoff; then the provider hangs (timeout); then it answers.
    assert downloads.run_due(rt, api)["retrying"] == 0
    later = utcnow() + downloads.backoff(1) + dt.timedelta(seconds=1)
    assert downloads.run_due(rt, api, now=later) == {
        "stored": 0,
        "deleted_at_provider": 0,
        "retrying": 1,
        "failed": 0,
    }
    assert job(world).last_error == "timeout"
    failures = audit_bodies(world, "recording.fetch_failed")
    assert len(failures) == 2
    for body in failures:  # codes only: no number, no URL, no provider identifiers
        assert CALLER not in body and "127.0.0.1" not in body and REC_SID not in body
    even_later = later + downloads.backoff(2) + dt.timedelta(seconds=1)
    assert downloads.run_due(rt, api, now=even_later)["stored"] == 1
    done = job(world)
    assert done.state == "stored" and done.provider_deleted_at is not None
    assert provider.deleted == [REC_SID]
    assert next(r for r in run_checks(rt) if r.code == "recordings.at_provider").passed
    # The call's outcome, on the board, in the statistics and in the month's usage CSV.
    board = world.login(world.supervisor).get("/api/v1/board").json()
    row = next(a for a in board["accounts"] if a["slug"] == "plomberie-durand")
    assert (row["answered_last_hour"], row["missed_last_hour"], row["waiting"]) == (0, 1, 0)
    st = client.get(f"/api/v1/accounts/{world.plumber.id}/stats").json()
    assert (st["calls"]["received"], st["calls"]["voicemail"]) == (1, 1)
    assert st["recordings"] == {"count": 1, "seconds": 12}
    month = utcnow().astimezone(PARIS).strftime("%Y-%m")
    usage_csv = client.get(f"/api/v1/accounts/{world.plumber.id}/usage/{month}.csv").text
    usage_row = next(csv.DictReader(io.StringIO(usage_csv)))
    assert (usage_row["calls_voicemail"], usage_row["recordings"]) == ("1", "1")

    # The account's recipients are told, with no personal data in the e-mail.
    counts = run_deliveries(rt)
    assert counts["sent"] >= 1
    bodies = smtp.bodies()
    assert any("message vocal" in b for b in bodies)
    for b in bodies:
        assert CALLER not in b and "06 39 98 12 34" not in b

    # The inbox: the client sees it, hears it (audited), the other account sees nothing.
    inbox = client.get(f"/api/v1/accounts/{world.plumber.id}/voicemails").json()
    assert inbox["new"] == 1
    (vm,) = inbox["voicemails"]
    assert (vm["state"], vm["duration_s"]) == ("new", 12)
    assert vm["caller"]["phone"] == CALLER
    audio = client.get(vm["playback_url"])
    assert audio.status_code == 200 and audio.content == AUDIO
    other = world.login(world.client_medical)
    assert_hidden(other, "GET", f"/api/v1/accounts/{world.plumber.id}/voicemails")
    medical = f"/api/v1/accounts/{world.medical.id}/voicemails"
    assert_hidden(other, "GET", f"{medical}/{vm['id']}/audio")
    assert_hidden(other, "POST", f"{medical}/{vm['id']}/treat")
    # Staff name any account; the voicemail must still be that account's.
    for staff in (world.operator, world.supervisor):
        c = world.login(staff)
        assert_hidden(c, "GET", f"{medical}/{vm['id']}/audio?reason=rappel")
        assert_hidden(c, "POST", f"{medical}/{vm['id']}/treat")
        assert_hidden(c, "POST", f"{medical}/{vm['id']}/message", WRITTEN_DOWN)

    # A trained operator hears it with a reason, and writes it down as a message.
    op = world.login(world.operator)
    assert op.get(vm["playback_url"]).status_code == 422  # no reason given
    assert op.get(vm["playback_url"] + "?reason=rappel").content == AUDIO
    listens = audit_bodies(world, "recording.listen")
    assert any("voicemail:rappel" in b for b in listens)
    untrained = make_person(rt, Role.OPERATOR, "new@permanence.example", trained=False)
    assert world.login(untrained).get(vm["playback_url"] + "?reason=rappel").status_code == 403
    made = op.post(
        f"/api/v1/accounts/{world.plumber.id}/voicemails/{vm['id']}/message", json=WRITTEN_DOWN
    )
    assert made.status_code == 201, made.text
    with rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        msg = s.get(Message, uuid.UUID(made.json()["id"]))
        assert msg is not None and str(msg.voicemail_id) == vm["id"]
        rec = s.scalars(select(Recording).where(Recording.kind == "voicemail")).one()
        assert rec.treated_at is not None and rec.treated_by == world.operator.id
    inbox = client.get(f"/api/v1/accounts/{world.plumber.id}/voicemails?state=new").json()
    assert inbox == {"new": 0, "voicemails": []}
    again = client.post(f"/api/v1/accounts/{world.plumber.id}/voicemails/{vm['id']}/treat")
    assert again.status_code == 200 and again.json()["state"] == "treated"
    assert len(audit_bodies(world, "voicemail.treat")) == 1


def test_a_recording_still_at_the_provider_fails_the_compliance_check(
    world: World, provider: ProviderServer
) -> None:
    rt = world.rt
    rt.settings.recording_download_attempts = 2
    leave_voicemail(world, provider, fail=[500, 500, 500])
    check = next(r for r in run_checks(rt) if r.code == "recordings.at_provider")
    assert check.passed  # one failure, retrying, young: not yet a finding
    later = utcnow() + dt.timedelta(minutes=5)
    api = TwilioRestApi(provider.base_url, ACCOUNT_SID, AUTH_TOKEN, timeout=0.5)
    assert downloads.run_due(rt, api, now=later)["failed"] == 1
    assert job(world).state == "failed"
    check = next(r for r in run_checks(rt) if r.code == "recordings.at_provider")
    assert not check.passed and check.evidence == [f"plomberie-durand: {REC_SID} (2 attempts)"]
    # Hours are enough on their own: a young job that keeps failing is found after M hours.
    rt.settings.recording_download_attempts = 50
    old = utcnow() + dt.timedelta(hours=rt.settings.recording_download_max_hours, minutes=1)
    check = next(r for r in run_checks(rt, now=old) if r.code == "recordings.at_provider")
    assert not check.passed


def test_console_pages_count_and_refuse_writing_down_a_treated_voicemail(
    world: World, provider: ProviderServer
) -> None:
    from tests.web.pages_helpers import page_login
    from tests.web.test_pages import INTERVENTION

    leave_voicemail(world, provider, fail=[])
    op, csrf = page_login(world, world.operator)
    console = op.get("/console").text
    assert "1 nouveau message vocal" in console
    page = op.get(f"/console/messagerie-vocale/{world.plumber.id}").text
    assert "Nouveaux messages vocaux pour Plomberie Durand" in page
    assert "<audio" not in page  # nothing plays before a reason is chosen
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        rec = s.scalars(select(Recording)).one()
        vm_id, call_id = rec.id, rec.call_id
    heard = op.get(
        f"/console/messagerie-vocale/{world.plumber.id}?ecouter={vm_id}&raison=rappel"
    ).text
    audio = f"/api/v1/accounts/{world.plumber.id}/voicemails/{vm_id}/audio?reason=rappel"
    assert f'src="{audio}"' in heard
    # The client treats it meanwhile: the operator's write-down is refused, clearly.
    client, client_csrf = page_login(world, world.client_plumber)
    done = client.post(
        f"/portail/messagerie-vocale/{vm_id}/traiter", data={"csrf_token": client_csrf}
    )
    assert done.status_code == 303
    url = f"/console/appels/{world.plumber.id}/{call_id}"
    r = op.post(
        f"{url}/enregistrer", data={**INTERVENTION, "messagerie": str(vm_id), "csrf_token": csrf}
    )
    assert r.status_code == 409
    assert "Ce message vocal a déjà été traité par quelqu" in r.text
    assert "aucun nouveau message vocal" in op.get("/console").text.lower()
