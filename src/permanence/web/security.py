"""Security headers on every response (pages, API, static files, refusals of bad input).

The Content-Security-Policy is strict: scripts and styles only from our own origin, no inline
script or style (htmx is told not to inject its indicator styles), no framing, forms post only
to us. Strict-Transport-Security is added on requests that came over HTTPS. A pure ASGI
middleware, so streamed responses (the live queue) pass through untouched.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"permissions-policy",
        b"camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
    ),
    (b"cross-origin-opener-policy", b"same-origin"),
)


# Everything else is a page (HTML for people): the API, the telephony webhooks, static files
# and the health check answer machines.
NOT_PAGES = (
    "/api/",
    "/opendsr/",
    "/telephony/",
    "/routing/",  # the queue's webhooks (permanence.routing)
    "/static/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/docs",
    "/redoc",
    "/openapi.json",
)


# Sent only on requests that came over HTTPS (directly, or from the trusted reverse proxy's
# X-Forwarded-Proto, which uvicorn's --proxy-headers turns into the request's scheme): over
# plain HTTP a browser ignores it, and a development server must stay reachable over HTTP.
HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        # Pages and API answers alike may carry personal data: never kept in a shared or disk
        # cache. Only our static files (stylesheet, scripts) may be cached.
        cacheable = path.startswith("/static/")
        # The API's interactive documentation is FastAPI's page, built from a CDN with inline
        # script: it keeps its own policy-less page (it shows no data of ours).
        headers = HEADERS[1:] if path in ("/docs", "/redoc") else HEADERS
        if scope.get("scheme") == "https":
            headers = (*headers, HSTS)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in headers if k not in names]
                if not cacheable and b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)
