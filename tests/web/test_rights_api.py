"""Data-subject rights over HTTP: the OpenDSR API end to end for every request type (receipts
checked with an independent Ed25519 verifier), the client's desk (verification, clock,
refusal, access package), and erasure that leaves no trace in clear anywhere."""

from __future__ import annotations

import base64
import io
import json
import logging
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from permanence.context import AccessContext, Role
from permanence.delivery.ports import HttpWebhookSender
from permanence.errors import KeyUnavailable
from permanence.messages.model import Message
from permanence.recordings.model import Recording
from permanence.rights.service import Outbox
from permanence.subjects.model import Caller
from tests.conftest import SmtpSink
from tests.factories import caller_with_records, ctx_for, make_caller
from tests.servers import HttpSink
from tests.web.conftest import World

FIRST, LAST = "Zéphyrine", "Quenouille"
PHONE, EMAIL = "06 71 23 45 89", "zephyrine.quenouille@exemple.fr"
PHONE_FORMS = ("+33671234589", "0671234589", "06 71 23 45 89")


def verify_receipt(certificate_pem: bytes, body: bytes, signature_b64: str) -> bool:
    """An independent check: ECDSA-SHA256 over the body with the published certificate's key."""
    pub = x509.load_pem_x509_certificate(certificate_pem).public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    try:
        pub.verify(base64.b64decode(signature_b64), body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def certificate(c: Any) -> bytes:
    disc = c.get("/opendsr/v1/discovery")
    path = urlsplit(disc.json()["processor_certificate"]).path
    return bytes(c.get(path).content)


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[HttpSink]:
    (tmp_path / "tls").mkdir()
    s = HttpSink(tls_dir=tmp_path / "tls").start()
    yield s
    s.stop()


def subject_with_records(world: World) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A caller of the plumber with a call, a delivered message and a stored recording."""
    made = caller_with_records(
        world.rt, world.plumber.id, first=FIRST, last=LAST, phone=PHONE, email=EMAIL
    )
    return made.caller_id, made.message_id, made.recording_id


def api_key(world: World) -> dict[str, str]:
    client = world.login(world.client_plumber)
    r = client.post(
        f"/api/v1/accounts/{world.plumber.id}/api-keys",
        json={"name": "dsr", "scopes": ["rights:manage"]},
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['secret']}"}


def opendsr_body(kind: str, callback: str, **extension: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject_request_id": str(uuid.uuid4()),
        "subject_request_type": kind,
        "submitted_time": "2026-11-30T10:00:00Z",
        "subject_identities": [
            {"identity_type": "phone_number", "identity_value": PHONE, "identity_format": "raw"},
            {"identity_type": "email", "identity_value": EMAIL, "identity_format": "raw"},
        ],
        "api_version": "1.0",
        "status_callback_urls": [callback],
    }
    if extension:
        body["extensions"] = {"permanence": extension}
    return body


EXTENSIONS: dict[str, dict[str, Any]] = {
    "access": {},
    "portability": {},
    "erasure": {},
    "restriction": {},
    "objection": {"objection_scope": "recording"},
    "rectification": {
        "changes": {"identity": {"last_name": "Quenouille-Martin"}},
        "statement": "Mon nom a changé.",
    },
}


@pytest.mark.parametrize("kind", list(EXTENSIONS))
def test_opendsr_request_end_to_end_with_signed_receipt_and_callback(
    world: World, sink: HttpSink, kind: str
) -> None:
    caller_id, _message_id, rec_id = subject_with_records(world)
    world.app.state.opendsr_callback_sender = HttpWebhookSender(verify=sink.client_tls)  # type: ignore[attr-defined]
    c = world.client()
    disc = c.get("/opendsr/discovery")
    assert disc.status_code == 200
    public_key = certificate(c)
    assert kind in disc.json()["supported_subject_request_types"]
    assert verify_receipt(public_key, disc.content, disc.headers["X-OpenDSR-Signature"])

    body = opendsr_body(kind, sink.url("/dsr"), **EXTENSIONS[kind])
    r = c.post("/opendsr/requests", json=body, headers=api_key(world))
    assert r.status_code == 201, r.text
    assert verify_receipt(public_key, r.content, r.headers["X-OpenDSR-Signature"])
    assert not verify_receipt(public_key, r.content + b" ", r.headers["X-OpenDSR-Signature"])
    receipt = r.json()
    assert receipt["subject_request_id"] == body["subject_request_id"]
    assert json.loads(base64.b64decode(receipt["encoded_request"]))["subject_request_type"] == kind

    status = c.get(f"/opendsr/requests/{body['subject_request_id']}", headers=api_key(world))
    assert status.status_code == 200
    assert verify_receipt(public_key, status.content, status.headers["X-OpenDSR-Signature"])
    assert status.json()["request_status"] == "completed"

    assert len(sink.received) == 1
    cb = sink.received[0]
    assert verify_receipt(public_key, cb.body, cb.headers["X-OpenDSR-Signature"])
    doc = json.loads(cb.body)
    assert doc["request_status"] == "completed"
    assert doc["subject_request_id"] == body["subject_request_id"]
    for form in (LAST, EMAIL, *PHONE_FORMS):
        assert form.encode() not in cb.body

    if kind in ("access", "portability"):
        assert doc["results_url"] and doc["results_count"] == 1
        # The results are retrievable by polling too, until the client's link is used.
        polled = c.get(f"/opendsr/requests/{body['subject_request_id']}", headers=api_key(world))
        assert polled.json()["results_url"] == doc["results_url"]
        assert polled.json()["results_count"] == 1
        token = doc["results_url"].rsplit("/", 1)[1]
        got = c.get(f"/api/v1/rights/downloads/{token}")
        assert got.status_code == 200
        polled = c.get(f"/opendsr/requests/{body['subject_request_id']}", headers=api_key(world))
        assert polled.json()["results_url"] is None and polled.json()["results_count"] == 0
        names = zipfile.ZipFile(io.BytesIO(got.content)).namelist()
        if kind == "access":
            assert {"donnees.json", "rapport.html"} <= set(names)
            assert f"enregistrements/{rec_id}.wav" in names
        else:
            assert {"portabilite.json", "portabilite.csv"} == set(names)
        assert c.get(f"/api/v1/rights/downloads/{token}").status_code == 409
    rt, account = world.rt, world.plumber.id
    with rt.db.session(AccessContext.system("test", account)) as s:
        caller = s.get(Caller, caller_id)
        if kind in ("access", "portability"):
            assert caller is not None
        elif kind == "erasure":
            assert caller is None
            cert = doc["extensions"]["permanence"]["erasure_certificate"]
            assert cert["certificate"]["deleted"]["messages"] == 1
        elif kind == "restriction":
            assert caller is not None and caller.restricted_at is not None
        elif kind == "objection":
            assert caller is not None and caller.recording_objected_at is not None
            assert s.get(Recording, rec_id) is None
        else:
            assert caller is not None
            opened = rt.keyring.cipher(s, account, caller_id).open_json(
                "callers", "name", caller_id, caller.name_sealed or b""
            )
            assert opened["last"] == "Quenouille-Martin"


def test_opendsr_cancel_while_pending_and_not_after(world: World, sink: HttpSink) -> None:
    make_caller(world.rt, world.plumber.id, first="A", last="B", phone="0611111111", email=None)
    make_caller(world.rt, world.plumber.id, first="A", last="B", phone="0622222222", email=None)
    world.app.state.opendsr_callback_sender = HttpWebhookSender(verify=sink.client_tls)  # type: ignore[attr-defined]
    c, key = world.client(), api_key(world)
    body = opendsr_body("access", sink.url("/dsr"))
    body["subject_identities"] = [{"identity_type": "name", "identity_value": "A B"}]
    assert c.post("/opendsr/requests", json=body, headers=key).status_code == 201
    # Two homonyms: the request waits for the client; it can still be cancelled.
    status = c.get(f"/opendsr/requests/{body['subject_request_id']}", headers=key).json()
    assert status["request_status"] == "in_progress"
    assert status["extensions"]["permanence"]["waiting_reason"] == "identity_ambiguous"
    gone = c.delete(f"/opendsr/requests/{body['subject_request_id']}", headers=key)
    assert gone.status_code == 202 and gone.json()["request_status"] == "cancelled"
    assert gone.json()["controller_id"] == world.plumber.slug
    assert (
        c.delete(f"/opendsr/requests/{body['subject_request_id']}", headers=key).status_code == 409
    )


def test_opendsr_needs_the_scope_and_hides_other_accounts_requests(world: World) -> None:
    subject_with_records(world)
    c = world.client()
    body = opendsr_body("access", "https://127.0.0.1:9/x")
    assert c.post("/opendsr/requests", json=body).status_code == 401
    client = world.login(world.client_plumber)
    r = client.post(
        f"/api/v1/accounts/{world.plumber.id}/api-keys",
        json={"name": "m", "scopes": ["messages:read"]},
    )
    weak = {"Authorization": f"Bearer {r.json()['secret']}"}
    assert c.post("/opendsr/requests", json=body, headers=weak).status_code == 403
    assert c.post("/opendsr/requests", json=body, headers=api_key(world)).status_code == 201
    other = world.login(world.client_medical)
    k = other.post(
        f"/api/v1/accounts/{world.medical.id}/api-keys",
        json={"name": "dsr", "scopes": ["rights:manage"]},
    ).json()["secret"]
    r2 = c.get(
        f"/opendsr/requests/{body['subject_request_id']}",
        headers={"Authorization": f"Bearer {k}"},
    )
    assert r2.status_code == 404


def test_http_callback_urls_are_refused(world: World) -> None:
    c = world.client()
    body = opendsr_body("access", "http://127.0.0.1:9/x")
    r = c.post("/opendsr/requests", json=body, headers=api_key(world))
    assert r.status_code == 400  # OpenDSR's status for a request that is not valid
    assert any("https" in e["message"] for e in r.json()["error"]["errors"])
    assert PHONE not in r.text and EMAIL not in r.text


def _desk(world: World, smtp: SmtpSink) -> tuple[Any, str]:
    world.app.state.rights_outbox = Outbox.from_settings(world.rt.settings)  # type: ignore[attr-defined]
    return world.login(world.client_plumber), f"/api/v1/accounts/{world.plumber.id}/rights/requests"


def _code(smtp: SmtpSink) -> str:
    import re

    found = re.search(r"\b(\d{6})\b", smtp.bodies()[-1])
    assert found
    return found.group(1)


@pytest.mark.gdpr("Art. 12(6)", "Art. 15")
def test_staff_intake_code_verification_and_access_package(world: World, smtp: SmtpSink) -> None:
    _caller, _msg, rec_id = subject_with_records(world)
    client, base = _desk(world, smtp)
    op = world.login(world.operator)
    r = op.post(base, json={"kind": "access", "requester": {"phone": PHONE}})
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["source"] == "staff" and req["subject_linked"] and not req["verified"]
    # Nothing is disclosed before verification.
    early = client.post(f"{base}/{req['id']}/execute")
    assert early.status_code == 409
    assert client.get(f"{base}/{req['id']}/recipients").status_code == 409
    sent = client.post(f"{base}/{req['id']}/verification", json={"method": "email_code"})
    assert sent.status_code == 200, sent.text
    body = smtp.bodies()[-1]
    assert LAST not in body and FIRST not in body and "06 71" not in body
    code = _code(smtp)
    wrong = "000000" if code != "000000" else "111111"
    assert client.post(f"{base}/{req['id']}/verify", json={"code": wrong}).status_code == 401
    assert client.post(f"{base}/{req['id']}/verify", json={"code": code}).status_code == 200
    done = client.post(f"{base}/{req['id']}/execute")
    assert done.status_code == 200, done.text
    url = done.json()["download_url"]
    token = url.rsplit("/", 1)[1]
    got = world.client().get(f"/api/v1/rights/downloads/{token}")
    assert got.status_code == 200
    z = zipfile.ZipFile(io.BytesIO(got.content))
    data = json.loads(z.read("donnees.json"))
    assert data["vous"]["nom"] == LAST
    assert data["messages"][0]["champs"]["description"] == "Robinet qui goutte"
    assert data["messages"][0]["destinataires"]
    report = z.read("rapport.html").decode()
    for needed in ("https://www.cnil.fr/fr/plaintes", "vous-même, lors de vos appels", "Demande"):
        assert needed.lower() in report.lower()
    assert z.read(f"enregistrements/{rec_id}.wav") == b"RIFF-audio-" + LAST.encode()
    # single use, and its file is gone: only the requester's own copy is left
    assert world.client().get(f"/api/v1/rights/downloads/{token}").status_code == 409
    assert len(list((world.rt.settings.data_dir / "rights").rglob("*.pmr"))) == 1
    assert world.client().get("/api/v1/rights/downloads/nope").status_code == 404


@pytest.mark.gdpr("Art. 12(6)")
def test_code_attempts_are_limited(world: World, smtp: SmtpSink) -> None:
    subject_with_records(world)
    client, base = _desk(world, smtp)
    req = client.post(base, json={"kind": "access", "requester": {"email": EMAIL}}).json()
    client.post(f"{base}/{req['id']}/verification", json={"method": "email_code"})
    code = _code(smtp)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        assert client.post(f"{base}/{req['id']}/verify", json={"code": wrong}).status_code == 401
    assert client.post(f"{base}/{req['id']}/verify", json={"code": code}).status_code == 429


@pytest.mark.gdpr("Art. 12(4)")
def test_refusal_needs_reasons_cnil_and_judicial_remedy(world: World, smtp: SmtpSink) -> None:
    subject_with_records(world)
    client, base = _desk(world, smtp)
    req = client.post(base, json={"kind": "erasure", "requester": {"email": EMAIL}}).json()
    r = client.post(
        f"{base}/{req['id']}/refuse",
        json={
            "reason": "art17_3_e_legal_claims",
            "explanation": "",
            "cnil_complaint_informed": False,
            "judicial_remedy_informed": False,
        },
    )
    assert r.status_code == 422
    problems = " ".join(r.json()["problems"])
    assert "explanation" in problems and "cnil" in problems and "judicial" in problems
    ok = client.post(
        f"{base}/{req['id']}/refuse",
        json={
            "reason": "art17_3_e_legal_claims",
            "explanation": "Un litige est en cours.",
            "cnil_complaint_informed": True,
            "judicial_remedy_informed": True,
        },
    )
    assert ok.status_code == 200, ok.text
    letter = ok.json()["letter_fr"]
    assert "CNIL" in letter and "recours juridictionnel" in letter and "17(3)(e)" in letter


@pytest.mark.gdpr("Art. 12(5)")
def test_repeated_request_is_flagged_and_refusing_it_as_excessive_needs_justification(
    world: World, smtp: SmtpSink
) -> None:
    subject_with_records(world)
    client, base = _desk(world, smtp)
    first = client.post(base, json={"kind": "access", "requester": {"email": EMAIL}}).json()
    second = client.post(base, json={"kind": "access", "requester": {"email": EMAIL}}).json()
    assert not first["possibly_excessive"] and second["possibly_excessive"]
    refusal = {
        "reason": "manifestly_excessive",
        "explanation": "Demande identique reçue récemment.",
        "cnil_complaint_informed": True,
        "judicial_remedy_informed": True,
    }
    assert client.post(f"{base}/{second['id']}/refuse", json=refusal).status_code == 422
    refusal["justification"] = "Troisième demande identique en un mois, réponse déjà fournie."
    assert client.post(f"{base}/{second['id']}/refuse", json=refusal).status_code == 200


@pytest.mark.gdpr("Art. 12(3)")
def test_extension_once_with_reason_sent_to_requester(world: World, smtp: SmtpSink) -> None:
    subject_with_records(world)
    client, base = _desk(world, smtp)
    req = client.post(
        base, json={"kind": "access", "requester": {"email": EMAIL}, "verified_by_controller": True}
    ).json()
    assert client.post(f"{base}/{req['id']}/extend", json={"reason": "whim"}).status_code == 422
    ext = client.post(f"{base}/{req['id']}/extend", json={"reason": "complexity"})
    assert ext.status_code == 200, ext.text
    assert ext.json()["channel"] == "email"
    assert "complexité" in smtp.bodies()[-1]
    out = ext.json()["request"]
    assert out["extended"] and out["due_at"] > req["due_at"]
    again = client.post(f"{base}/{req['id']}/extend", json={"reason": "complexity"})
    assert again.status_code == 409


def test_operator_cannot_vouch_or_decide(world: World) -> None:
    subject_with_records(world)
    op = world.login(world.operator)
    base = f"/api/v1/accounts/{world.plumber.id}/rights/requests"
    r = op.post(
        base, json={"kind": "access", "requester": {"email": EMAIL}, "verified_by_controller": True}
    )
    assert r.status_code == 403
    req = op.post(base, json={"kind": "erasure", "requester": {"email": EMAIL}}).json()
    assert op.post(f"{base}/{req['id']}/execute").status_code == 403
    assert op.post(f"{base}/{req['id']}/extend", json={"reason": "complexity"}).status_code == 403


@pytest.mark.gdpr("Art. 17")
def test_erasure_under_legal_hold_is_refused_with_the_reason(world: World) -> None:
    from permanence.retention.service import place_hold

    caller_id, _m, _r = subject_with_records(world)
    with world.rt.db.session(ctx_for(world.plumber.id, Role.DPO)) as s:
        place_hold(s, reason="litigation-1", caller_id=caller_id)
    client = world.login(world.client_plumber)
    base = f"/api/v1/accounts/{world.plumber.id}/rights/requests"
    req = client.post(
        base,
        json={"kind": "erasure", "requester": {"phone": PHONE}, "verified_by_controller": True},
    ).json()
    done = client.post(f"{base}/{req['id']}/execute").json()
    assert done["request"]["state"] == "refused"
    assert done["request"]["refusal_reason"] == "legal_hold"
    with world.rt.db.session(AccessContext.system("t", world.plumber.id)) as s:
        assert s.get(Caller, caller_id) is not None


def _files(root: Path) -> Iterator[Path]:
    for p in root.rglob("*"):
        if p.is_file():
            yield p


@pytest.mark.gdpr("Art. 17")
def test_after_erasure_the_subject_is_nowhere_in_clear(
    world: World, smtp: SmtpSink, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    caller_id, message_id, _rec_id = subject_with_records(world)
    client, base = _desk(world, smtp)
    # An access package was made earlier and never downloaded: it must not survive either.
    acc = client.post(
        base, json={"kind": "access", "requester": {"email": EMAIL}, "verified_by_controller": True}
    ).json()
    assert client.post(f"{base}/{acc['id']}/execute").status_code == 200
    with world.rt.db.session(AccessContext.system("t", world.plumber.id)) as s:
        sealed = s.get(Message, message_id)
        assert sealed is not None
        blob = sealed.payload_sealed
    req = client.post(
        base,
        json={
            "kind": "erasure",
            "requester": {"phone": PHONE, "name": f"{FIRST} {LAST}"},
            "verified_by_controller": True,
        },
    ).json()
    done = client.post(f"{base}/{req['id']}/execute")
    assert done.status_code == 200, done.text
    cert = done.json()["certificate"]
    assert cert["certificate"]["deleted"]["messages"] == 1
    assert cert["certificate"]["deleted"]["recordings"] == 1
    from permanence.contracts.offboarding import verify_certificate

    assert verify_certificate(cert["certificate"], cert["signature"], cert["public_key"])
    html = client.get(f"{base}/{req['id']}/certificate", params={"format": "html"})
    assert html.status_code == 200 and "Certificat d'effacement" in html.text
    export = tmp_path / "export"
    export.mkdir()
    (export / "certificat.json").write_text(json.dumps(cert))
    (export / "certificat.html").write_text(html.text)

    needles = [FIRST, LAST, EMAIL, *PHONE_FORMS, FIRST.encode("utf-8").decode("latin-1")]
    data_dir = world.rt.settings.data_dir
    with world.rt.db.session(AccessContext.system("t", world.plumber.id)) as s:
        from permanence.audit import integrity

        assert integrity.verify(s, world.rt.keyring.checkpoint_signing_key().public_key()).ok
        with pytest.raises(KeyUnavailable):
            world.rt.keyring.cipher(s, world.plumber.id, caller_id)
        assert s.scalars(select(Caller).where(Caller.id == caller_id)).first() is None
    world.rt.db.engine.dispose()
    searched = 0
    for path in [*_files(data_dir), *_files(export)]:
        raw = path.read_bytes()
        searched += 1
        for needle in needles:
            assert needle.encode() not in raw, f"{needle!r} found in {path.name}"
    assert searched >= 2
    assert not list((data_dir / "recordings").rglob("*.pmr"))
    assert (
        not list((data_dir / "rights").rglob("*.pmr")) if (data_dir / "rights").exists() else True
    )
    # Our logs (the test's own SMTP server, aiosmtpd's "mail.log", logs what it receives).
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))
    for needle in needles:
        assert needle not in ours
    for body in smtp.bodies():
        for needle in (FIRST, LAST, *PHONE_FORMS):
            assert needle not in body
    assert blob  # the copy taken before cannot be opened: its key is gone (checked above)
