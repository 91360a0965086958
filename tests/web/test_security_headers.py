"""The security headers (web/security.py) on every kind of answer: a page, an API answer, errors
(404, 422, 413, a domain 500 and an unexpected 500), a redirect, a static file, a streamed
response; personal data never cacheable; HSTS only for requests that came over HTTPS (directly,
or through the trusted proxy's X-Forwarded-Proto as uvicorn reads it)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from permanence.web.app import create_app
from permanence.web.security import CSP
from tests.web.conftest import World
from tests.web.live_server import serving
from tests.web.pages_helpers import page_login

EXPECTED = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "permissions-policy": (
        "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"
    ),
    "cross-origin-opener-policy": "same-origin",
}


def assert_headers(r: Any, *, cacheable: bool = False) -> None:
    for name, value in EXPECTED.items():
        assert r.headers.get(name) == value, (name, r.status_code, r.headers)
    if cacheable:
        assert "no-store" not in r.headers.get("cache-control", "")
    else:
        assert r.headers.get("cache-control") == "no-store", (r.status_code, r.headers)
    assert "strict-transport-security" not in r.headers  # plain HTTP


def test_a_page_an_api_answer_with_personal_data_and_a_redirect(world: World) -> None:
    page = world.client().get("/connexion")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert_headers(page)
    client = world.login(world.client_plumber)
    me = client.get("/api/v1/me")  # the signed-in person's own e-mail and name
    assert me.status_code == 200 and world.client_plumber.email in me.text
    assert_headers(me)
    messages = client.get(f"/api/v1/accounts/{world.plumber.id}/messages")
    assert messages.status_code == 200
    assert_headers(messages)
    redirect = TestClient(world.app, follow_redirects=False).get("/")  # type: ignore[arg-type]
    assert redirect.status_code in (302, 303, 307) and redirect.headers["location"]
    assert_headers(redirect)


def test_a_static_file_is_cacheable_but_carries_the_other_headers(world: World) -> None:
    css = world.client().get("/static/app.css")
    assert css.status_code == 200
    assert_headers(css, cacheable=True)


def test_error_answers_carry_them(world: World) -> None:
    c = world.client()
    op = world.login(world.operator)
    api_404 = op.get("/api/v1/accounts/00000000-0000-4000-8000-000000000000/messages")
    assert api_404.status_code == 404
    page_404 = c.get("/nulle-part")
    assert page_404.status_code == 404
    invalid = op.post("/api/v1/calls", json={"dialled": 12})
    assert invalid.status_code == 422
    too_large = op.post("/api/v1/calls", content=b"x" * (2 * 1024 * 1024))
    assert too_large.status_code == 413
    bad_encoding = op.get("/api/v1/board?x=%ff")
    assert bad_encoding.status_code == 400
    for r in (api_404, page_404, invalid, too_large, bad_encoding):
        assert_headers(r)


def test_server_errors_carry_them(world: World) -> None:
    # A domain 500: the configuration lacks what a route needs (ConfigurationError, answered
    # by our handler with its message, which names the setting).
    from permanence.errors import ConfigurationError
    from permanence.telephony.ports import provider_api

    world.rt.settings.twilio_account_sid = None
    app = create_app(world.rt)

    @app.get("/api/v1/test-only-configuration-error")
    def unconfigured() -> None:
        provider_api(world.rt.settings, "twilio")  # raises: no account SID set

    with pytest.raises(ConfigurationError):
        provider_api(world.rt.settings, "twilio")
    configured = TestClient(app, raise_server_exceptions=False).get(
        "/api/v1/test-only-configuration-error"
    )
    assert configured.status_code == 500
    assert "PERMANENCE_TWILIO_ACCOUNT_SID" in configured.json()["message"]
    assert_headers(configured)
    # An unexpected exception, answered by Starlette's own error middleware.

    @app.get("/api/v1/test-only-unexpected-error")
    def boom() -> None:
        raise RuntimeError("an unexpected failure")

    unexpected = TestClient(app, raise_server_exceptions=False).get(
        "/api/v1/test-only-unexpected-error"
    )
    assert unexpected.status_code == 500
    assert_headers(unexpected)


def test_a_streamed_response_carries_them(world: World) -> None:
    browser, _csrf = page_login(world, world.operator)
    cookies = dict(browser.cookies.items())
    with (
        serving(world.app) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}") as c,
        c.stream("GET", "/console/flux", cookies=cookies, timeout=10) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert_headers(r)
        first = next(r.iter_text())
        assert first.startswith("retry:")


def test_hsts_only_over_https(world: World) -> None:
    plain = world.client().get("/connexion")
    assert "strict-transport-security" not in plain.headers
    direct = TestClient(world.app, base_url="https://testserver").get("/connexion")  # type: ignore[arg-type]
    assert direct.headers["strict-transport-security"].startswith("max-age=")
    assert int(direct.headers["strict-transport-security"].split("=")[1].split(";")[0]) >= 31536000


@pytest.mark.parametrize(("trusted", "expected"), [("127.0.0.1", True), ("192.0.2.1", False)])
def test_hsts_behind_the_proxy_follows_x_forwarded_proto_from_the_trusted_proxy_only(
    world: World, trusted: str, expected: bool
) -> None:
    with serving(world.app, proxy_headers=True, forwarded_allow_ips=trusted) as port:
        base = f"http://127.0.0.1:{port}"
        over_https = httpx.get(f"{base}/connexion", headers={"X-Forwarded-Proto": "https"})
        over_http = httpx.get(f"{base}/connexion", headers={"X-Forwarded-Proto": "http"})
    assert ("strict-transport-security" in over_https.headers) is expected
    assert "strict-transport-security" not in over_http.headers
    assert over_https.headers["x-frame-options"] == "DENY"


def test_the_api_documentation_pages_keep_every_header_but_the_content_security_policy(
    world: World,
) -> None:
    # FastAPI's documentation page loads a CDN's script inline (settings.api_docs, off by
    # default): it alone goes without the policy, and keeps every other header.
    world.rt.settings.api_docs = True
    client = TestClient(create_app(world.rt))
    for path in ("/docs", "/redoc"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "content-security-policy" not in r.headers
        for name, value in EXPECTED.items():
            if name != "content-security-policy":
                assert r.headers.get(name) == value, (path, name)
        assert r.headers["cache-control"] == "no-store"
    assert_headers(client.get("/openapi.json"))


def test_a_request_whose_server_names_no_scheme_is_plain_http(world: World) -> None:
    # The ASGI scope's "scheme" is optional ("http" when absent): no HSTS then, no error.
    # Only the response's start carries headers: the body passes through untouched.
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "path": "/connexion",
        "raw_path": b"/connexion",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"permanence.example")],
        "client": ("192.0.2.1", 50000),
        "server": ("permanence.example", 80),
    }
    asyncio.run(world.app(scope, receive, send))  # type: ignore[operator]
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert start["status"] == 200
    assert "strict-transport-security" not in headers
    assert headers["content-security-policy"] == CSP and headers["cache-control"] == "no-store"
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert bodies and all(set(m) <= {"type", "body", "more_body"} for m in bodies)
