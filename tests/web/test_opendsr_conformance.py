"""OpenDSR 1.0 conformance, from the outside: a controller's client written from the
specification (github.com/opengdpr/OpenDSR, specification.md), not from our code. It talks
HTTP to the app behind a real socket with httpx, fetches the processor certificate that
/discovery names, and checks every signature with the ``cryptography`` package on the raw
bytes before parsing anything (8.8). Nothing of ``permanence`` is imported here but the test
set-up (the world, an API key, the callback receiver's TLS)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from tests.factories import caller_with_records
from tests.servers import HttpSink
from tests.web.conftest import World
from tests.web.live_server import serving

EMAIL, PHONE = "Leandre.Foucault@Exemple.fr", "06 12 98 76 54"


def wait_for(sink: HttpSink, n: int, seconds: float = 10) -> None:
    """Callbacks are sent after the answer (the processor's background work)."""
    deadline = time.monotonic() + seconds
    while len(sink.received) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sink.received) == n, f"{len(sink.received)} callback(s), expected {n}"


def rfc3339(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, f"{value} has no offset (RFC 3339)"
    return parsed


class SignatureInvalid(AssertionError):
    pass


@dataclass
class SpecClient:
    """A controller's OpenDSR client, as the specification describes one."""

    base: str  # the processor's OpenDSR root, e.g. https://processor.example/opendsr
    token: str
    certificate: x509.Certificate | None = None

    def _http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=10)

    def verify(self, response: httpx.Response | tuple[dict[str, str], bytes]) -> None:
        """8.3 / 8.8: the signature header over the raw body, with the certificate's key."""
        if isinstance(response, httpx.Response):
            headers, body = dict(response.headers), response.content
        else:
            headers, body = response
        lower = {k.lower(): v for k, v in headers.items()}
        assert self.certificate is not None, "discovery first"
        assert "x-opendsr-processor-domain" in lower
        signature = base64.b64decode(lower["x-opendsr-signature"])
        key = self.certificate.public_key()
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, body, ec.ECDSA(hashes.SHA256()))
            elif isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
            else:
                raise AssertionError(f"not a FIPS 186-4 key: {type(key).__name__}")
        except InvalidSignature:
            raise SignatureInvalid("signature does not verify") from None

    def discover(self) -> dict[str, Any]:
        with self._http() as h:
            r = h.get("/v1/discovery", headers={"Accept": "application/json"})
            assert r.status_code == 200
            doc = r.json()
            for prop in (
                "api_version",
                "supported_identities",
                "supported_subject_request_types",
                "processor_certificate",
            ):
                assert prop in doc, prop
            # 6.3: an HTTP endpoint where the X.509 certificate can be downloaded.
            cert_url = urlsplit(doc["processor_certificate"])
            assert cert_url.scheme in ("http", "https")
            pem = httpx.get(doc["processor_certificate"], timeout=10)
            assert pem.status_code == 200
            self.certificate = x509.load_pem_x509_certificate(pem.content)
            # The domain the certificate is issued to is the one the responses name.
            cn = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
            assert r.headers["X-OpenDSR-Processor-Domain"] == cn == cert_url.hostname
            self.verify(r)
            return dict(doc)

    def submit(self, request: dict[str, Any]) -> tuple[bytes, httpx.Response]:
        raw = json.dumps(request, indent=2).encode()  # any JSON layout the controller likes
        with self._http() as h:
            r = h.post(
                "/v1/opendsr_requests",
                content=raw,
                headers={
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "Authorization": f"Bearer {self.token}",
                },
            )
        self.verify(r)
        return raw, r

    def status(self, request_id: str, path: str = "/v1/opendsr_requests") -> httpx.Response:
        with self._http() as h:
            r = h.get(f"{path}/{request_id}", headers={"Authorization": f"Bearer {self.token}"})
        self.verify(r)
        return r

    def cancel(self, request_id: str) -> httpx.Response:
        with self._http() as h:
            r = h.delete(
                f"/v1/opendsr_requests/{request_id}",
                headers={"Authorization": f"Bearer {self.token}"},
            )
        self.verify(r)
        return r


def request_body(kind: str, identities: list[dict[str, str]], **more: Any) -> dict[str, Any]:
    return {
        "subject_request_id": str(uuid.uuid4()),
        "regulation": "gdpr",
        "subject_request_type": kind,
        "submitted_time": more.pop("submitted_time", "2026-11-30T10:00:00Z"),
        "subject_identities": identities,
        "api_version": "1.0",
        **more,
    }


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[HttpSink]:
    (tmp_path / "tls").mkdir()
    s = HttpSink(tls_dir=tmp_path / "tls").start()
    yield s
    s.stop()


@pytest.fixture
def processor(world: World, sink: HttpSink) -> Iterator[SpecClient]:
    from permanence.delivery.ports import HttpWebhookSender  # set-up: trust the test CA

    world.app.state.opendsr_callback_sender = HttpWebhookSender(verify=sink.client_tls)  # type: ignore[attr-defined]
    key = world.login(world.client_plumber).post(
        f"/api/v1/accounts/{world.plumber.id}/api-keys",
        json={"name": "opendsr", "scopes": ["rights:manage"]},
    )
    assert key.status_code == 201
    with serving(world.app) as port:
        world.rt.settings.public_base_url = f"http://127.0.0.1:{port}"
        yield SpecClient(f"http://127.0.0.1:{port}/opendsr", key.json()["secret"])


def test_discovery_names_a_certificate_whose_key_signs_it(processor: SpecClient) -> None:
    doc = processor.discover()
    assert doc["api_version"].startswith("1.")
    assert {"access", "portability", "erasure"} <= set(doc["supported_subject_request_types"])
    pairs = {(i["identity_type"], i["identity_format"]) for i in doc["supported_identities"]}
    assert {("email", "raw"), ("email", "sha256"), ("controller_customer_id", "raw")} <= pairs
    assert processor.certificate is not None
    # 4.2: FIPS 186-4 signatures (ECDSA or RSA), not EdDSA.
    assert isinstance(
        processor.certificate.public_key(), ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    )


def test_an_access_request_by_hashed_email_end_to_end(
    world: World, processor: SpecClient, sink: HttpSink
) -> None:
    caller_with_records(
        world.rt, world.plumber.id, first="Léandre", last="Foucault", phone=PHONE, email=EMAIL
    )
    processor.discover()
    hashed = hashlib.sha256(EMAIL.strip().lower().encode()).hexdigest()
    submitted = dt.datetime.now(dt.UTC) - dt.timedelta(days=20)
    body = request_body(
        "access",
        [{"identity_type": "email", "identity_value": hashed, "identity_format": "sha256"}],
        submitted_time=submitted.strftime("%Y-%m-%dT%H:%M:%SZ"),
        status_callback_urls=[sink.url("/opendsr/callbacks")],
    )
    raw, r = processor.submit(body)
    # 7.3: 201 with the required properties.
    assert r.status_code == 201
    receipt = r.json()
    for prop in (
        "controller_id",
        "expected_completion_time",
        "received_time",
        "encoded_request",
        "subject_request_id",
    ):
        assert prop in receipt, prop
    assert receipt["subject_request_id"] == body["subject_request_id"]
    assert base64.b64decode(receipt["encoded_request"]) == raw  # the entire body as sent
    received = rfc3339(receipt["received_time"])
    expected = rfc3339(receipt["expected_completion_time"])
    # The clock ran from the subject's request to the controller (submitted_time), not from
    # the processor's receipt: a month after 20 days ago is well before a month from now.
    assert expected < received + dt.timedelta(days=15)
    assert expected > submitted + dt.timedelta(days=27)

    # 8.5-8.8: the callback, authenticated before it is parsed.
    wait_for(sink, 1)
    cb = sink.received[0]
    processor.verify((cb.headers, cb.body))
    forged = cb.body.replace(b"completed", b"cancelled")
    with pytest.raises(SignatureInvalid):
        processor.verify((cb.headers, forged))
    doc = json.loads(cb.body)
    for prop in (
        "controller_id",
        "status_callback_url",
        "subject_request_id",
        "request_status",
        "expected_completion_time",
    ):
        assert prop in doc, prop
    assert doc["status_callback_url"] == sink.url("/opendsr/callbacks")
    assert doc["controller_id"] == receipt["controller_id"]
    assert doc["request_status"] == "completed"
    assert doc["results_url"] and doc["results_count"] >= 1
    assert hashed.encode() not in cb.body and EMAIL.lower().encode() not in cb.body.lower()

    # 8.1-8.4: status by GET, same results until they are fetched.
    status = processor.status(body["subject_request_id"]).json()
    for prop in ("controller_id", "expected_completion_time", "subject_request_id"):
        assert status[prop] == doc[prop]
    assert status["request_status"] == "completed"
    assert status["results_url"] == doc["results_url"]
    results = httpx.get(doc["results_url"], timeout=10)
    assert results.status_code == 200 and results.content[:2] == b"PK"  # a zip
    # 10.1: the OpenGDPR route names are honoured, with the OpenGDPR headers.
    legacy = processor.status(body["subject_request_id"], "/v1/opengdpr_requests")
    assert legacy.headers["X-OpenGDPR-Signature"] == legacy.headers["X-OpenDSR-Signature"]
    assert legacy.json()["results_url"] is None  # used once, by the controller


def test_cancellation_answers_202_and_errors_are_signed(
    processor: SpecClient, sink: HttpSink
) -> None:
    processor.discover()
    # A controller's customer id alone: nothing of the processor is keyed by it, so the
    # request waits (in_progress) rather than answering "no data".
    body = request_body(
        "erasure",
        [
            {
                "identity_type": "controller_customer_id",
                "identity_value": "C-1042",
                "identity_format": "raw",
            }
        ],
        status_callback_urls=[sink.url("/cb")],
    )
    _raw, r = processor.submit(body)
    assert r.status_code == 201
    assert processor.status(body["subject_request_id"]).json()["request_status"] in (
        "pending",
        "in_progress",
    )
    time.sleep(0.5)  # the background work after the receipt (it leaves the request waiting)
    gone = processor.cancel(body["subject_request_id"])
    # 9.2: 202 with controller_id, received_time, subject_request_id.
    assert gone.status_code == 202
    doc = gone.json()
    assert doc["controller_id"] and doc["subject_request_id"] == body["subject_request_id"]
    rfc3339(doc["received_time"])
    assert processor.status(body["subject_request_id"]).json()["request_status"] == "cancelled"
    wait_for(sink, 1)
    assert json.loads(sink.received[0].body)["request_status"] == "cancelled"

    # 7.5-7.6: a request that is not well formed is a 400 with the error object, signed.
    bad = request_body("erasure", [])
    del bad["subject_request_id"]
    _raw, r = processor.submit(bad)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == 400 and isinstance(error["errors"], list)
    assert all({"domain", "reason", "message"} <= set(e) for e in error["errors"])
    # An unknown request: signed too.
    missing = processor.status(str(uuid.uuid4()))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 404
