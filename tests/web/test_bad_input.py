"""Bad input gets a clear 4xx that says what is wrong, never a 500, and leaves nothing behind:
malformed telephony webhooks (signed by twilio's own validator) and OpenDSR bodies, oversized
bodies (declared or streamed, through a real uvicorn socket too), wrong content types, broken
encodings. Runs on SQLite and on PostgreSQL like the rest of the suite."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from permanence.accounts.model import MandateVersion
from permanence.calls.model import Call
from permanence.context import AccessContext
from permanence.rights.model import RightsRequest
from permanence.web.app import create_app
from tests.web.conftest import World
from tests.web.live_server import serving
from tests.web.pages_helpers import page_login
from tests.web.test_rights_api import EMAIL, PHONE, api_key, opendsr_body

PUBLIC = "https://permanence.example"
TOKEN = "test-auth-token-for-bad-input"
PLUMBER_DID = "+33240000001"
LIMIT = 1024 * 1024


def rows(world: World, model: Any) -> int:
    """Rows of ``model`` in both accounts (each read under its account: RLS on PostgreSQL)."""
    total = 0
    for account in (world.medical, world.plumber):
        with world.rt.db.session(AccessContext.system("test", account.id)) as s:
            q = select(func.count()).select_from(model).where(model.account_id == account.id)
            total += int(s.scalar(q) or 0)
    return total


def problem(r: Any, status: int, *words: str) -> dict[str, Any]:
    """The API's JSON problem, with the expected status and words in its message."""
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) >= {"error", "message", "problems"}, body
    for word in words:
        assert word in body["message"], body
    return body


# -- telephony webhooks ---------------------------------------------------------------------


@pytest.fixture
def hooks(world: World) -> TestClient:
    world.rt.settings.public_base_url = PUBLIC
    world.rt.settings.twilio_auth_token = TOKEN
    return world.client()


def signed(client: TestClient, path: str, params: dict[str, str], token: str = TOKEN) -> Any:
    signature = RequestValidator(token).compute_signature(PUBLIC + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def test_a_correct_signed_webhook_opens_a_call(world: World, hooks: TestClient) -> None:
    # The control: the same helper with a complete body is accepted, so the refusals below
    # are about the body and nothing else.
    r = signed(hooks, "/telephony/twilio/incoming", {"CallSid": "CA" + "1" * 32, "To": PLUMBER_DID})
    assert r.status_code == 200, r.text
    assert rows(world, Call) == 1


@pytest.mark.parametrize(
    ("path", "params", "words"),
    [
        ("/telephony/twilio/incoming", {"To": PLUMBER_DID}, "CallSid"),
        ("/telephony/twilio/incoming", {"CallSid": "CA" + "2" * 32}, "To"),
        (
            "/telephony/twilio/incoming",
            {"CallSid": "'; DROP TABLE calls; --", "To": PLUMBER_DID},
            "CallSid",
        ),
        ("/telephony/twilio/status", {"CallSid": "CA" + "3" * 32}, "CallStatus"),
        ("/telephony/twilio/gather?a=not-a-uuid&c=x", {"CallSid": "CA" + "4" * 32}, "'a'"),
        ("/telephony/twilio/recording", {"CallSid": "CA" + "5" * 32}, "RecordingSid"),
    ],
)
def test_signed_webhooks_with_missing_or_wrong_fields_are_a_clear_422(
    world: World, hooks: TestClient, path: str, params: dict[str, str], words: str
) -> None:
    body = problem(signed(hooks, path, params), 422)
    assert words in " ".join(body["problems"])
    assert rows(world, Call) == 0


def test_a_status_with_a_duration_that_is_not_a_number_changes_nothing(
    world: World, hooks: TestClient
) -> None:
    sid = "CA" + "8" * 32
    assert signed(
        hooks, "/telephony/twilio/incoming", {"CallSid": sid, "To": PLUMBER_DID}
    ).is_success
    status = {"CallSid": sid, "To": PLUMBER_DID, "CallStatus": "completed"}
    bad = signed(hooks, "/telephony/twilio/status", {**status, "CallDuration": "12 minutes"})
    assert "CallDuration" in " ".join(problem(bad, 422)["problems"])
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        call = s.scalars(select(Call).where(Call.provider_sid == sid)).one()
        assert call.status != "completed" and call.duration_s is None


def test_unsigned_and_wrongly_signed_webhooks_are_403(world: World, hooks: TestClient) -> None:
    params = {"CallSid": "CA" + "6" * 32, "To": PLUMBER_DID}
    unsigned = hooks.post("/telephony/twilio/incoming", data=params)
    assert unsigned.status_code == 403 and "signature" in unsigned.json()["message"]
    other_key = signed(hooks, "/telephony/twilio/incoming", params, token="another-token")
    assert other_key.status_code == 403
    tampered = hooks.post(
        "/telephony/twilio/incoming",
        data={**params, "To": "+33240000099"},
        headers={
            "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(
                PUBLIC + "/telephony/twilio/incoming", params
            )
        },
    )
    assert tampered.status_code == 403
    garbage = hooks.post(
        "/telephony/twilio/incoming",
        content=b"&&==&garbage",
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": "AAAA",
        },
    )
    assert garbage.status_code == 403
    assert rows(world, Call) == 0


def test_webhooks_refuse_json_bodies_and_oversized_forms(world: World, hooks: TestClient) -> None:
    as_json = hooks.post("/telephony/twilio/incoming", json={"CallSid": "CA" + "7" * 32})
    problem(as_json, 415, "application/x-www-form-urlencoded")
    big = {"CallSid": "CA" + "7" * 32, "To": PLUMBER_DID, "Pad": "x" * 20_000}
    problem(signed(hooks, "/telephony/twilio/incoming", big), 413, "16384")
    assert rows(world, Call) == 0


# -- OpenDSR --------------------------------------------------------------------------------


def opendsr_error(r: Any, status: int, *words: str) -> dict[str, Any]:
    """OpenDSR's error object (spec 7.6), naming no identity of the subject."""
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == status
    assert error["errors"] and all(
        set(e) == {"domain", "reason", "message"} for e in error["errors"]
    )
    text = error["message"] + " ".join(e["message"] for e in error["errors"])
    for word in words:
        assert word in text, error
    assert PHONE not in r.text and EMAIL not in r.text
    return error


# Each body is the valid request with one thing wrong, and what the error must name.
MALFORMED_OPENDSR: list[tuple[Any, str]] = [
    (lambda b: {**b, "subject_request_type": "delete_everything"}, "subject_request_type"),
    (lambda b: {**b, "subject_identities": []}, "subject_identities"),
    (lambda b: {k: v for k, v in b.items() if k != "subject_identities"}, "subject_identities"),
    (lambda b: {**b, "subject_identities": PHONE}, "subject_identities"),
    (lambda b: {**b, "subject_request_id": 12}, "subject_request_id"),
    (lambda b: {**b, "submitted_time": "yesterday"}, "submitted_time"),
    (
        lambda b: {**b, "subject_identities": [{"identity_type": "fax", "identity_value": PHONE}]},
        "identity_type",
    ),
    (lambda b: [b], "body"),
    (lambda b: {**b, "status_callback_urls": ["http://127.0.0.1:9/x"]}, "https"),
]


def test_malformed_opendsr_bodies_are_a_400_in_opendsr_form(world: World) -> None:
    # One World and one key for every case (each is independent: nothing is stored).
    c = world.client()
    key = api_key(world)
    for mutate, words in MALFORMED_OPENDSR:
        body = mutate(opendsr_body("access", "https://127.0.0.1:9/x"))
        opendsr_error(c.post("/opendsr/requests", json=body, headers=key), 400, words)
    assert rows(world, RightsRequest) == 0


def test_opendsr_bodies_that_are_not_json_at_all(world: World) -> None:
    c = world.client()
    key = {**api_key(world), "content-type": "application/json"}
    opendsr_error(
        c.post("/opendsr/requests", content=b'{"subject_request_id": ', headers=key), 400, "JSON"
    )
    opendsr_error(c.post("/opendsr/requests", content=b"\xff\xfe{}", headers=key), 400, "UTF-8")
    form = {**key, "content-type": "application/x-www-form-urlencoded"}
    opendsr_error(
        c.post("/opendsr/requests", content=b"a=b", headers=form), 415, "application/json"
    )
    huge = opendsr_body("access", "https://127.0.0.1:9/x")
    huge["extensions"] = {"other-processor.example": {"pad": "x" * (LIMIT + 10)}}
    opendsr_error(c.post("/opendsr/requests", json=huge, headers=api_key(world)), 413, str(LIMIT))
    assert rows(world, RightsRequest) == 0


# -- the global body limit ------------------------------------------------------------------


def test_a_declared_body_over_the_limit_is_413_before_reading(world: World) -> None:
    op = world.login(world.operator)
    r = op.post(
        "/api/v1/calls",
        content=b'{"dialled": "' + b"0" * LIMIT + b'"}',
        headers={"content-type": "application/json"},
    )
    body = problem(r, 413, str(LIMIT))
    assert body["error"] == "too_large"
    assert rows(world, Call) == 0


def test_a_streamed_body_over_the_limit_is_413(world: World) -> None:
    op = world.login(world.operator)

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        yield b'{"dialled": "'
        for _ in range(20):
            yield b"0" * 64 * 1024
        yield b'"}'

    r = op.post("/api/v1/calls", content=chunks(), headers={"content-type": "application/json"})
    problem(r, 413, str(LIMIT))
    assert rows(world, Call) == 0


def test_the_limit_is_a_setting(world: World) -> None:
    world.rt.settings.max_body_bytes = 16 * 1024
    app = create_app(world.rt)
    c = TestClient(app)
    c.post("/api/v1/auth/login", json={"email": "x@y.example", "password": "p" * 100})
    r = c.post("/api/v1/auth/login", json={"email": "x@y.example", "password": "p" * 20_000})
    problem(r, 413, "16384")


@pytest.fixture
def live(world: World) -> Iterator[int]:
    """The app behind a real uvicorn socket, with a 16 KiB limit."""
    world.rt.settings.max_body_bytes = 16 * 1024
    with serving(create_app(world.rt)) as port:
        yield port


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    return data


def test_over_a_real_socket_a_declared_size_is_refused_without_waiting_for_the_body(
    live: int,
) -> None:
    with socket.create_connection(("127.0.0.1", live)) as sock:
        sock.sendall(
            b"POST /api/v1/calls HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{"
        )
        started = time.monotonic()
        head = _answer(sock)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert time.monotonic() - started < 3  # answered at once: the 10 GB were never awaited


def test_over_a_real_socket_a_chunked_body_is_cut_off_at_the_limit(live: int) -> None:
    with socket.create_connection(("127.0.0.1", live)) as sock:
        sock.sendall(
            b"POST /api/v1/calls HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"4000\r\n" + b"0" * 0x4000 + b"\r\n"
        sent = 0
        try:
            for _ in range(64):  # 1 MiB offered in 16 KiB chunks; the server stops it early
                sock.sendall(chunk)
                sent += 1
        except (BrokenPipeError, ConnectionResetError):
            pass
        head = _answer(sock)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b"content-security-policy" in head.lower()


def test_an_oversized_mandate_upload_shows_a_clear_error_and_stores_nothing(world: World) -> None:
    admin, csrf = page_login(world, world.admin)
    url = f"/admin/comptes/{world.plumber.id}/mandat"
    before = rows(world, MandateVersion)
    # Over the editor's own 256 KiB limit: the editor says so, in its form.
    mid = admin.post(
        url,
        data={"action": "enregistrer", "csrf_token": csrf},
        files={"fichier": ("m.yaml", b"# " + b"x" * 300_000, "application/yaml")},
    )
    assert mid.status_code == 422 and "256 KiB" in mid.text
    # Over the global limit: a page that says it is too large (French first).
    big = admin.post(
        url,
        data={"action": "enregistrer", "csrf_token": csrf},
        files={"fichier": ("m.yaml", b"# " + b"x" * (LIMIT + 1), "application/yaml")},
    )
    assert big.status_code == 413
    assert big.headers["content-type"].startswith("text/html")
    assert "trop volumineux" in big.text
    assert rows(world, MandateVersion) == before


# -- content types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ctype", "content"),
    [
        ("application/x-www-form-urlencoded", b"dialled=0240000001"),
        ("text/plain", b'{"dialled": "0240000001"}'),
        ("application/xml", b"<call><dialled>0240000001</dialled></call>"),
        ("multipart/form-data; boundary=x", b"--x\r\n\r\n--x--\r\n"),
    ],
)
def test_json_endpoints_given_another_type_answer_415_naming_json(
    world: World, ctype: str, content: bytes
) -> None:
    op = world.login(world.operator)
    r = op.post("/api/v1/calls", content=content, headers={"content-type": ctype})
    problem(r, 415, "application/json", ctype.split(";")[0])
    assert rows(world, Call) == 0


def test_a_json_endpoint_given_a_list_or_nothing_says_what_it_expects(world: World) -> None:
    op = world.login(world.operator)
    listed = problem(op.post("/api/v1/calls", json=[1, 2]), 422)
    assert any(p.startswith("body:") for p in listed["problems"])
    empty = problem(
        op.post("/api/v1/calls", content=b"", headers={"content-type": "application/json"}), 422
    )
    assert empty["problems"]
    assert rows(world, Call) == 0


def test_form_pages_given_json_answer_a_4xx_page(world: World) -> None:
    c = world.client()
    r = c.post("/connexion", json={"email": "x@y.example", "password": "p"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")


# -- encodings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ctype", "content", "words"),
    [
        ("application/json", b'{"dialled": "\xff\xfe0240000001"}', "UTF-8"),
        ("application/json; charset=utf-8", '{"dialled": "0240000001"}'.encode("utf-16"), "UTF-8"),
        ("application/json; charset=klingon", b'{"dialled": "0240000001"}', "klingon"),
        ("application/json", b'{"dialled": "0240\\ud800000001"}', "Unicode"),
    ],
)
def test_broken_json_encodings_are_a_clear_400(
    world: World, ctype: str, content: bytes, words: str
) -> None:
    op = world.login(world.operator)
    problem(op.post("/api/v1/calls", content=content, headers={"content-type": ctype}), 400, words)
    assert rows(world, Call) == 0


def test_a_real_charset_that_is_not_utf8_is_415(world: World) -> None:
    op = world.login(world.operator)
    r = op.post(
        "/api/v1/calls",
        content='{"dialled": "0240000001"}'.encode("latin-1"),
        headers={"content-type": "application/json; charset=latin-1"},
    )
    problem(r, 415, "UTF-8")


@pytest.mark.parametrize(
    "content",
    [b"email=\xff\xfe%40x.example&password=p", b"email=%ff%fe&password=p", b"email=%zz&password=p"],
)
def test_broken_form_encodings_are_a_clear_400_page(world: World, content: bytes) -> None:
    c = world.client()
    r = c.post(
        "/connexion", content=content, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 400
    assert "ne sait pas lire" in r.text


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("/api/v1/board?since=%ff%fe", "query string is not valid UTF-8"),
        ("/api/v1/board?since=%zz", "query string has a '%'"),
        ("/api/v1/accounts/%ff%fe/messages", "path is not valid UTF-8"),
        ("/api/v1/accounts/%G1/messages", "path has a '%'"),
    ],
)
def test_broken_urls_are_a_clear_400(world: World, url: str, words: str) -> None:
    op = world.login(world.operator)
    problem(op.get(url), 400, words)


def test_a_nul_refusal_carries_the_security_headers(world: World) -> None:
    r = world.client().post(
        "/api/v1/auth/login", json={"email": "a\x00@b.example", "password": "p"}
    )
    problem(r, 422, "NUL")
    assert r.headers["x-content-type-options"] == "nosniff"


# -- defects found by fuzzing (schemathesis), each kept as a regression test ---------------


@pytest.mark.parametrize(
    "query",
    ["start=9999-12-31", "end=0001-01-01", "start=0001-01-01&end=0001-01-02", "end=9999-12-31"],
)
def test_statistics_dates_at_the_ends_of_the_calendar_are_a_422_not_a_500(
    world: World, query: str
) -> None:
    # Found by schemathesis as a supervisor: "date value out of range" (OverflowError) was a 500.
    sup = world.login(world.supervisor)
    for url in (
        f"/api/v1/operators/stats?{query}",
        f"/api/v1/operators/{world.operator.id}/stats?{query}",
        f"/api/v1/accounts/{world.plumber.id}/stats?{query}",
    ):
        problem(sup.get(url), 422, "dates must be between")
    page = sup.get(f"/supervision/accounts/{world.plumber.id}?{query}")
    assert 400 <= page.status_code < 500


def test_a_usage_report_for_the_last_month_of_the_calendar_is_a_422(world: World) -> None:
    sup = world.login(world.supervisor)
    for month in ("9999-12", "0001-01"):
        r = sup.get(f"/api/v1/accounts/{world.plumber.id}/usage/{month}")
        problem(r, 422, "dates must be between")
