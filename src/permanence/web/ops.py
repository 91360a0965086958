"""What the people running the service use: readiness, metrics, and clean answers when the
infrastructure fails (docs/deployment.md, Monitoring).

An infrastructure failure (database unreachable or cut, pool exhausted, disk full) answers
503 (507 for a full disk) in the product's error shape with ``Retry-After`` - a French page
for people - and writes one log line naming the route and the cause, never a traceback.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import exc as sa_exc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from permanence import health, infra
from permanence.errors import PermanenceError
from permanence.metrics import Metrics

log = logging.getLogger("permanence.web")

router = APIRouter(include_in_schema=False)


@router.get("/readyz")
def readyz(request: Request) -> Response:
    """200 when this replica can serve; 503 with the problems' codes when it cannot."""
    from permanence import __version__

    result = health.check(request.app.state.rt)
    if result.ready:
        return JSONResponse({"status": "ready", "version": __version__, "schema": result.revision})
    first = result.problems[0]
    return JSONResponse(
        {
            "error": first.code,
            "message": first.message,
            "problems": [{"code": p.code, "message": p.message} for p in result.problems],
        },
        status_code=503,
        headers={"Retry-After": "5"},
    )


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format, for a scraper holding ``PERMANENCE_METRICS_TOKEN``."""
    token = request.app.state.rt.settings.metrics_token
    if not token:
        return JSONResponse(
            {"error": "not_found", "message": "metrics are off (PERMANENCE_METRICS_TOKEN)"},
            status_code=404,
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        return JSONResponse(
            {"error": "not_authenticated", "message": "a bearer token is required"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    from prometheus_client import CONTENT_TYPE_LATEST

    body = request.app.state.metrics.exposition()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class MeasureLatency:
    """Times every HTTP request into the histogram, labelled with its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = str(getattr(route, "path", "")) or "unmatched"
            self.metrics.observe(
                scope.get("method", ""), template, status, time.perf_counter() - start
            )


def route_of(request: Request) -> str:
    """The route's template (``/api/v1/messages/{message_id}``), never the concrete path."""
    route = request.scope.get("route")
    return str(getattr(route, "path", "")) or "unmatched"


def install(app: FastAPI, error_response: Callable[[Request, PermanenceError], Response]) -> None:
    """Metrics, and clean answers to infrastructure failures, whichever route or dependency
    they come from (answered by ``error_response``, as the routes' errors are: web.app hands
    it down)."""
    from permanence.web import pages

    app.state.metrics = Metrics(app.state.rt)
    app.add_middleware(MeasureLatency, metrics=app.state.metrics)

    async def infrastructure_failure(request: Request, exc: Exception) -> Response:
        failure = infra.classify(exc)
        if failure is None:
            raise exc  # a bug: Starlette's last-resort handler answers 500 and logs it
        log.error(
            "%s %s answered %d %s: %s",
            request.method,
            route_of(request),
            failure.status,
            failure.code,
            infra.describe(exc),
        )
        await pages.keep_typed(request)
        return error_response(request, failure.error())

    for kind in (sa_exc.DBAPIError, sa_exc.TimeoutError, OSError):
        app.add_exception_handler(kind, infrastructure_failure)
