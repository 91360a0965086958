"""What the people running the service use: readiness, metrics, and clean answers when the
infrastructure fails (docs/deployment.md, Monitoring).

An infrastructure failure (database unreachable or cut, pool exhausted, disk full) answers
503 (507 for a full disk) in the product's error shape with ``Retry-After`` - a French page
for people - and writes one log line naming the route and the cause, never a traceback.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import exc as sa_exc

from permanence import health, infra

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


def route_of(request: Request) -> str:
    """The route's template (``/api/v1/messages/{message_id}``), never the concrete path."""
    route = request.scope.get("route")
    return str(getattr(route, "path", "")) or "unmatched"


def install(app: FastAPI) -> None:
    """Answer infrastructure failures cleanly, whichever route or dependency they come from."""
    from permanence.web.app import error_response

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
        return error_response(request, failure.error())

    for kind in (sa_exc.DBAPIError, sa_exc.TimeoutError, OSError):
        app.add_exception_handler(kind, infrastructure_failure)
