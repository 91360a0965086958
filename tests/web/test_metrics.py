"""GET /metrics after a scripted day: each figure checked, and not one caller's name, number
or e-mail anywhere in the scrape. Gauges come from the database, so a second application
(another replica) over the same database answers the same figures."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text as sql

from permanence.audit import integrity
from permanence.breaches import service as breaches
from permanence.calls import service as calls
from permanence.calls.model import Call
from permanence.calls.outcome import settle
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.db import utcnow
from permanence.delivery.worker import Channels, run_due
from permanence.filestore import store_from_settings
from permanence.recordings.model import RecordingDownload
from permanence.retention.service import sweep_exclusive
from permanence.rights import service as rights
from permanence.rights.model import Kind
from permanence.runtime import Runtime
from permanence.web.app import create_app
from tests.conftest import SEEDED_PERSONAL_DATA, free_port
from tests.factories import ctx_for, make_caller
from tests.web.conftest import World

TOKEN = "metrics-token-for-tests-0123456789"
PLUMBER_DID = "+33240000001"
TAKE = {
    "purpose": "intervention",
    "values": {
        "last_name": "Martin",
        "phone": "01 99 00 12 34",
        "address": "3 rue des Lilas, 44000 Nantes",
        "urgency": "à planifier",
        "description": "Fuite sous l'évier",
    },
}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> tuple[str, Samples]:
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return r.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _call(rt: Runtime, started: dt.datetime, number: str, **outcome: object) -> uuid.UUID:
    """A call as the provider's callbacks leave it (status, times)."""
    with rt.db.session(AccessContext.system("test:telephony")) as s:
        opened = calls.open_call(
            s, rt.keyring, dialled=PLUMBER_DID, caller_number=number, started_at=started
        )
        call = s.get(Call, opened.call.id)
        assert call is not None
        for k, v in outcome.items():
            setattr(call, k, v)
        settle(call)  # as each callback does: the outcome follows from the facts
        return call.id


@pytest.fixture
def day(world: World, settings: Settings) -> World:
    settings.metrics_token = TOKEN
    return world


def test_metrics_after_a_scripted_day(day: World, settings: Settings) -> None:
    world, rt = day, day.rt
    now = utcnow()
    plumber = world.plumber.id
    # Calls, one with each outcome, and one waiting for 90 s.
    ended = now - dt.timedelta(minutes=30)
    answered = {"status": "completed", "answered_at": ended - dt.timedelta(minutes=5)}
    _call(rt, now - dt.timedelta(hours=2), "0612345601", **answered, ended_at=ended)
    _call(rt, now - dt.timedelta(hours=3), "0612345602", **answered, ended_at=ended)
    _call(rt, now - dt.timedelta(hours=2), "0612345603", status="no-answer", ended_at=ended)
    _call(rt, now - dt.timedelta(hours=2), "0612345604", status="busy", ended_at=ended)
    _call(
        rt,
        now - dt.timedelta(hours=1),
        "0612345605",
        status="completed",
        voicemail=True,
        ended_at=ended,
    )
    recorded = _call(rt, now - dt.timedelta(hours=1), "0612345606", **answered, ended_at=ended)
    # Its recording is announced by the provider and not fetched yet: still at the provider.
    with rt.db.session(AccessContext.system("test:telephony", plumber)) as s:
        s.add(
            RecordingDownload(
                account_id=plumber,
                call_id=recorded,
                kind="call",
                provider_sid="RE" + "0" * 32,
                url="https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE0",
                state="pending",
            )
        )
    _call(rt, now - dt.timedelta(days=3), "0612345607", status="completed", ended_at=ended)
    _call(rt, now - dt.timedelta(seconds=90), "0612345608", status="ringing")
    # The operator takes two messages through the API, then goes on a break.
    op = world.login(world.operator)
    for _ in range(2):
        opened = {"dialled": PLUMBER_DID, "caller_number": "0199001234"}
        call = op.post("/api/v1/calls", json=opened)
        assert call.status_code == 201, call.text
        url = f"/api/v1/accounts/{plumber}/calls/{call.json()['id']}/messages"
        assert op.post(url, json=TAKE).status_code == 201
    assert op.post("/api/v1/presence", json={"state": "break"}).status_code == 200
    # The e-mail notifications fail: the SMTP server does not answer.
    settings.smtp_host, settings.smtp_port = "127.0.0.1", free_port()
    assert run_due(rt, channels=Channels.from_settings(settings))["retrying"] == 2
    # Requests of the people who called: one on time, one overdue (received 40 days ago).
    make_caller(rt, plumber)
    with rt.db.session(ctx_for(plumber, Role.CLIENT)) as s:
        for received in (now - dt.timedelta(days=2), now - dt.timedelta(days=40)):
            rights.submit(
                s,
                rt.keyring,
                rights.Intake(
                    kind=Kind.ACCESS,
                    requester=rights.Requester(phone="06 39 98 12 34"),
                    verified_by_controller=True,
                    received_at=received,
                ),
            )
    # A breach the provider learnt of 50 hours ago, nobody told yet.
    with rt.db.session(AccessContext.system("test:breach")) as s:
        breach = breaches.open_breach(s, aware_at=now - dt.timedelta(hours=50), nature="vol")
        reference = breaches.breach_view(s, breach.id).reference
    # The night's jobs: the retention sweep and an audit checkpoint.
    sweep_exclusive(rt.db, store_from_settings(settings), now=now)
    with rt.db.session(AccessContext.system("test:checkpoint")) as s:
        integrity.create_checkpoint(s, rt.keyring)
        chain = s.scalar(sql("SELECT seq FROM audit_head"))

    text, m = scrape(world.client())
    slug = "plomberie-durand"
    # Calls of the last 24 hours by outcome (the one three days old is not counted).
    assert value(m, "permanence_calls_last_24h", account=slug, outcome="answered") == 3
    assert value(m, "permanence_calls_last_24h", account=slug, outcome="abandoned") == 1
    assert value(m, "permanence_calls_last_24h", account=slug, outcome="failed") == 1  # busy
    assert value(m, "permanence_calls_last_24h", account=slug, outcome="voicemail") == 1
    # Still going: the one seeded 90 s ago and the operator's two (no provider callback
    # has ended them) - the live board's own rule.
    assert value(m, "permanence_calls_last_24h", account=slug, outcome="in_progress") == 3
    assert value(m, "permanence_calls_waiting", account=slug) == 3
    assert 90 <= value(m, "permanence_calls_longest_wait_seconds", account=slug) < 150
    assert value(m, "permanence_calls_waiting", account="cabinet-lefevre") == 0
    assert value(m, "permanence_recordings_at_provider", account=slug) == 1
    assert value(m, "permanence_messages_taken_last_24h", account=slug) == 2
    assert value(m, "permanence_operators", state="break") == 1
    assert value(m, "permanence_deliveries", account=slug, channel="email", state="retrying") == 2
    assert value(m, "permanence_deliveries", account=slug, channel="portal", state="delivered") == 2
    assert value(m, "permanence_rights_requests_open", account=slug) == 2
    assert value(m, "permanence_rights_requests_overdue", account=slug) == 1
    assert value(m, "permanence_breach_open", reference=reference, phase="1") == 1
    assert value(m, "permanence_breach_age_seconds", reference=reference) >= 50 * 3600
    assert value(m, "permanence_breach_controllers_notified", reference=reference) == 0
    left = value(
        m,
        "permanence_breach_clock_remaining_seconds",
        reference=reference,
        clock="controller_24h",
        state="overdue",
    )
    assert -27 * 3600 < left < -25 * 3600
    assert value(m, "permanence_retention_last_run_timestamp_seconds") == pytest.approx(
        utcnow().timestamp(), abs=60
    )
    assert ("permanence_retention_last_run_deleted", frozenset()) in m
    assert value(m, "permanence_audit_chain_length") == chain
    assert 0 <= value(m, "permanence_audit_checkpoint_age_seconds") < 60
    assert value(m, "permanence_database_up") == 1
    assert value(m, "permanence_storage_full") == 0
    # Latency per route template: never a concrete id in a label.
    route = "/api/v1/accounts/{account_id}/calls/{call_id}/messages"
    assert (
        value(
            m,
            "permanence_http_request_duration_seconds_count",
            method="POST",
            route=route,
            status="2xx",
        )
        == 2
    )
    assert str(plumber) not in text
    # No personal data anywhere in the scrape.
    needles = (*SEEDED_PERSONAL_DATA, "Martin", "0612345601", "+33612345601", "06 39 98 12 34")
    assert [n for n in needles if n.lower() in text.lower()] == []
    # Another replica over the same database says the same.
    other = Runtime.from_settings(settings)
    try:
        _, m2 = scrape(TestClient(create_app(other)))
    finally:
        other.close()
    for key in ("permanence_messages_taken_last_24h", "permanence_rights_requests_overdue"):
        assert value(m2, key, account=slug) == value(m, key, account=slug)


def test_metrics_need_the_token_and_are_off_without_one(world: World, settings: Settings) -> None:
    client = world.client()
    assert client.get("/metrics").status_code == 404
    settings.metrics_token = TOKEN
    assert client.get("/metrics").status_code == 401
    r = client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
