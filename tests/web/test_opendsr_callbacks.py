"""OpenDSR status callbacks go through the delivery ledger (issue 19): a callback the
controller's receiver refuses is retried by the delivery worker with back-off, signed, and
still carries the results link; polling gives the link meanwhile."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from permanence.context import AccessContext
from permanence.db import utcnow
from permanence.delivery.model import Delivery, DeliveryEvent
from permanence.delivery.ports import HttpWebhookSender
from permanence.delivery.worker import Channels, run_due
from permanence.rights.model import RightsRequest
from tests.factories import caller_with_records
from tests.servers import HttpSink
from tests.web.conftest import World

EMAIL, PHONE = "ophelie.carillon@exemple.fr", "06 55 44 33 22"


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[HttpSink]:
    (tmp_path / "tls").mkdir()
    s = HttpSink(tls_dir=tmp_path / "tls").start()
    yield s
    s.stop()


def _key(world: World) -> dict[str, str]:
    r = world.login(world.client_plumber).post(
        f"/api/v1/accounts/{world.plumber.id}/api-keys",
        json={"name": "dsr", "scopes": ["rights:manage"]},
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['secret']}"}


def _signed_by(pem: bytes, body: bytes, signature: str) -> bool:
    key = x509.load_pem_x509_certificate(pem).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        key.verify(base64.b64decode(signature), body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _rows(world: World, request_id: uuid.UUID) -> list[Delivery]:
    ctx = AccessContext.system("test", world.plumber.id)
    with world.rt.db.session(ctx, readonly=True) as s:
        rows = s.scalars(
            select(Delivery)
            .where(Delivery.message_id == request_id)
            .order_by(Delivery.created_at, Delivery.recipient_index)
        ).all()
        s.expunge_all()
        return list(rows)


def test_a_refused_callback_is_retried_by_the_worker_with_the_results_link(
    world: World, sink: HttpSink
) -> None:
    caller_with_records(
        world.rt, world.plumber.id, first="Ophélie", last="Carillon", phone=PHONE, email=EMAIL
    )
    sender = HttpWebhookSender(verify=sink.client_tls)
    world.app.state.opendsr_callback_sender = sender  # type: ignore[attr-defined]
    sink.statuses = [503]  # the controller's receiver is down for the first attempt
    c, key = world.client(), _key(world)
    external = str(uuid.uuid4())
    body = {
        "subject_request_id": external,
        "subject_request_type": "access",
        "regulation": "gdpr",
        "submitted_time": "2026-11-30T10:00:00Z",
        "subject_identities": [
            {"identity_type": "email", "identity_value": EMAIL, "identity_format": "raw"}
        ],
        "status_callback_urls": [sink.url("/dsr")],
    }
    assert c.post("/opendsr/v1/opendsr_requests", json=body, headers=key).status_code == 201

    # The first attempt was made at once and refused: the ledger keeps it for a retry.
    assert len(sink.received) == 1
    ctx = AccessContext.system("test", world.plumber.id)
    with world.rt.db.session(ctx, readonly=True) as s:
        req = s.scalars(select(RightsRequest).where(RightsRequest.external_id == external)).one()
        request_id = req.id
    [row] = _rows(world, request_id)
    assert (row.channel, row.event, row.status) == ("opendsr_callback", "status", "pending")
    assert row.attempts == 1 and row.last_error == "http_503"
    assert row.subject_id is None and row.mandate_id is None
    assert row.next_attempt_at is not None
    wait = row.next_attempt_at - utcnow()
    assert dt.timedelta(seconds=40) < wait < dt.timedelta(minutes=2)  # 1 min +/- jitter

    # Meanwhile polling gives the results (the client's own link).
    polled = c.get(f"/opendsr/v1/opendsr_requests/{external}", headers=key).json()
    assert polled["request_status"] == "completed" and polled["results_count"] == 1
    link = polled["results_url"]
    assert link

    # Not due yet: a pass sends nothing.
    channels = Channels(mailer=None, webhooks=sender, sms=None)
    run_due(world.rt, channels=channels)
    assert len(sink.received) == 1
    # Due: the worker retries; the receiver now accepts.
    run_due(world.rt, now=utcnow() + dt.timedelta(minutes=3), channels=channels)
    assert len(sink.received) == 2
    retried = sink.received[1]
    pem = c.get("/opendsr/v1/processor_certificate.pem").content
    assert _signed_by(pem, retried.body, retried.headers["X-OpenDSR-Signature"])
    doc = json.loads(retried.body)
    assert doc["request_status"] == "completed"
    assert doc["results_url"] == link and doc["results_count"] == 1
    assert doc["status_callback_url"] == sink.url("/dsr")
    assert EMAIL.encode() not in retried.body
    [row] = _rows(world, request_id)
    assert row.status == "delivered" and row.attempts == 2
    with world.rt.db.session(ctx, readonly=True) as s:
        history = s.scalars(
            select(DeliveryEvent.status)
            .where(DeliveryEvent.delivery_id == row.id)
            .order_by(DeliveryEvent.at, DeliveryEvent.attempt)
        ).all()
    assert list(history) == ["pending", "pending", "delivered"]

    # Once the client used its link, neither polling nor a later callback repeats it.
    token = link.rsplit("/", 1)[1]
    assert c.get(f"/api/v1/rights/downloads/{token}").status_code == 200
    polled = c.get(f"/opendsr/v1/opendsr_requests/{external}", headers=key).json()
    assert polled["results_url"] is None and polled["results_count"] == 0


def test_each_callback_url_is_told_of_a_cancellation_and_retried_on_its_own(
    world: World, sink: HttpSink
) -> None:
    """Homonyms: the request waits for the client (in_progress, as the receipt said: no
    callback); the cancellation is the change each URL is told of, retried until it is."""
    from tests.factories import make_caller

    make_caller(world.rt, world.plumber.id, first="A", last="B", phone="0611111111", email=None)
    make_caller(world.rt, world.plumber.id, first="A", last="B", phone="0622222222", email=None)
    sender = HttpWebhookSender(verify=sink.client_tls)
    world.app.state.opendsr_callback_sender = sender  # type: ignore[attr-defined]
    sink.default = 500
    c, key = world.client(), _key(world)
    external = str(uuid.uuid4())
    body = {
        "subject_request_id": external,
        "subject_request_type": "erasure",
        "submitted_time": "2026-11-30T10:00:00Z",
        "subject_identities": [{"identity_type": "name", "identity_value": "A B"}],
        "status_callback_urls": [sink.url("/a"), sink.url("/b")],
    }
    assert c.post("/opendsr/requests", json=body, headers=key).status_code == 201
    assert sink.received == []  # created in_progress: the receipt said so, no callback
    assert c.delete(f"/opendsr/v1/opendsr_requests/{external}", headers=key).status_code == 202
    assert sorted(r.path for r in sink.received) == ["/a", "/b"]  # tried at once, refused
    ctx = AccessContext.system("test", world.plumber.id)
    with world.rt.db.session(ctx, readonly=True) as s:
        request_id = s.scalars(
            select(RightsRequest.id).where(RightsRequest.external_id == external)
        ).one()
    rows = _rows(world, request_id)
    assert [(r.recipient_index, r.status, r.last_error) for r in rows] == [
        (0, "pending", "http_500"),
        (1, "pending", "http_500"),
    ]
    sink.default = 200
    run_due(
        world.rt,
        now=utcnow() + dt.timedelta(minutes=3),
        channels=Channels(mailer=None, webhooks=sender, sms=None),
    )
    assert [json.loads(r.body)["request_status"] for r in sink.received[2:]] == ["cancelled"] * 2
    assert {r.status for r in _rows(world, request_id)} == {"delivered"}


def test_requests_the_specification_does_not_allow_are_a_signed_400(world: World) -> None:
    """A submitted_time without an offset or in the future, an identity format we do not
    hold, a malformed extension under our domain: a 400 naming the field, nothing saved."""
    c, key = world.client(), _key(world)
    pem = c.get("/opendsr/v1/processor_certificate.pem").content

    def body(**changes: object) -> dict[str, object]:
        base: dict[str, object] = {
            "subject_request_id": str(uuid.uuid4()),
            "subject_request_type": "erasure",
            "regulation": "gdpr",
            "submitted_time": "2026-11-30T10:00:00Z",
            "subject_identities": [
                {"identity_type": "email", "identity_value": EMAIL, "identity_format": "raw"}
            ],
        }
        return {**base, **changes}

    future = (utcnow() + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    md5 = [{"identity_type": "email", "identity_value": "0" * 32, "identity_format": "md5"}]
    cases = [
        (body(submitted_time="2026-11-30T10:00:00"), "submitted_time"),
        (body(submitted_time=future), "submitted_time: in the future"),
        (body(subject_identities=md5), "subject_identities.0"),
        (body(regulation="ccpa"), "regulation"),
        (
            body(extensions={"127.0.0.1": {"objection_scope": 5}}),
            "extensions.127.0.0.1.objection_scope",
        ),
    ]
    for sent, where in cases:
        r = c.post("/opendsr/v1/opendsr_requests", json=sent, headers=key)
        assert r.status_code == 400, (where, r.text)
        assert _signed_by(pem, r.content, r.headers["X-OpenDSR-Signature"])
        messages = " ".join(e["message"] for e in r.json()["error"]["errors"])
        assert where in messages, (where, messages)
        assert EMAIL not in r.text
        status = c.get(f"/opendsr/v1/opendsr_requests/{sent['subject_request_id']}", headers=key)
        assert status.status_code == 404  # nothing saved
    # Our parameters under our domain's key (OpenDSR 7.1.2) are read like extensions.permanence.
    caller_with_records(
        world.rt, world.plumber.id, first="Ophélie", last="Carillon", phone=PHONE, email=EMAIL
    )
    sent = body(
        subject_request_type="objection", extensions={"127.0.0.1": {"objection_scope": "recording"}}
    )
    assert c.post("/opendsr/v1/opendsr_requests", json=sent, headers=key).status_code == 201
    got = c.get(f"/opendsr/v1/opendsr_requests/{sent['subject_request_id']}", headers=key)
    assert got.json()["request_status"] == "completed"


def test_a_customer_id_alone_waits_then_the_vouched_request_needs_no_second_check(
    world: World, sink: HttpSink
) -> None:
    """controller_customer_id: nothing of ours is keyed by it, so the request waits
    (identity_not_held) instead of answering "no data"; once the client gives the phone, the
    controller's vouching still holds: verified, executed, and the controller told."""
    caller_with_records(
        world.rt, world.plumber.id, first="Ophélie", last="Carillon", phone=PHONE, email=EMAIL
    )
    world.app.state.opendsr_callback_sender = HttpWebhookSender(verify=sink.client_tls)  # type: ignore[attr-defined]
    c, key = world.client(), _key(world)
    external = str(uuid.uuid4())
    body = {
        "subject_request_id": external,
        "subject_request_type": "access",
        "regulation": "gdpr",
        "submitted_time": "2026-11-30T10:00:00Z",
        "subject_identities": [
            {"identity_type": "controller_customer_id", "identity_value": "C-77"}
        ],
        "status_callback_urls": [sink.url("/dsr")],
    }
    assert c.post("/opendsr/v1/opendsr_requests", json=body, headers=key).status_code == 201
    status = c.get(f"/opendsr/v1/opendsr_requests/{external}", headers=key).json()
    assert status["request_status"] == "in_progress"
    assert status["extensions"]["permanence"]["waiting_reason"] == "identity_not_held"
    ctx = AccessContext.system("test", world.plumber.id)
    with world.rt.db.session(ctx, readonly=True) as s:
        request_id = s.scalars(
            select(RightsRequest.id).where(RightsRequest.external_id == external)
        ).one()
    desk = world.login(world.client_plumber)
    base = f"/api/v1/accounts/{world.plumber.id}/rights/requests/{request_id}"
    r = desk.post(f"{base}/information", json={"phone": PHONE})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "verified"
    assert sink.received == []  # in_progress all along: nothing to tell
    assert desk.post(f"{base}/execute").status_code == 200
    assert [json.loads(x.body)["request_status"] for x in sink.received] == ["completed"]
    assert json.loads(sink.received[0].body)["results_count"] == 1
