"""The ASGI application. Routes parse, call one service, render; errors become clear 4xx."""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.datastructures import DefaultPlaceholder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute, request_response
from fastapi.staticfiles import StaticFiles
from fastapi.utils import get_value_or_default
from starlette.exceptions import HTTPException as StarletteHTTPException

from permanence import __version__
from permanence.errors import (
    BadRequest,
    InternalError,
    PayloadTooLarge,
    PermanenceError,
    UnsupportedMediaType,
    ValidationFailed,
)
from permanence.infra import ServiceUnavailable
from permanence.runtime import Runtime
from permanence.staff.auth import TooManyAttempts
from permanence.web import api, pages
from permanence.web.inputs import (
    ASGIApp,
    LimitRequestBody,
    RejectBrokenEncodings,
    RejectNulCharacters,
    RequireJson,
    Scope,
)
from permanence.web.routes import ApiRoute
from permanence.web.security import SecurityHeaders

log = logging.getLogger("permanence.web")


class _App(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outside Starlette's ServerErrorMiddleware, so that even the answer to an unexpected
        # error (a 500) carries the security headers.
        return SecurityHeaders(super().build_middleware_stack())


def create_app(rt: Runtime, *, deliveries: bool = False) -> FastAPI:
    """The application; ``deliveries`` also runs the delivery worker every
    ``PERMANENCE_DELIVERY_INTERVAL`` seconds while it serves (``permanence serve`` does)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        from permanence.delivery.worker import DeliveryLoop
        from permanence.recordings.downloads import run_due as run_downloads
        from permanence.routing.dispatch import tick as queue_dispatch
        from permanence.telephony.stale import resolve_stale

        loop = None
        if deliveries and rt.settings.delivery_interval > 0:
            # The housekeeping the loop runs after each delivery pass, in this order.
            passes = (
                ("stale calls", resolve_stale),
                ("recording downloads", run_downloads),
                ("queue dispatch", queue_dispatch),
            )
            loop = DeliveryLoop(rt, rt.settings.delivery_interval, passes=passes)
            loop.start()
        try:
            yield
        finally:
            if loop is not None:
                loop.stop()

    app = _App(
        title="Permanence",
        version=__version__,
        description="GDPR-compliant telephone answering service API.",
        lifespan=lifespan,
        # FastAPI's documentation pages load Swagger UI from a CDN with an inline script: off
        # unless the deployment asks (docs/web.md); the schema itself stays at /openapi.json.
        docs_url="/docs" if rt.settings.api_docs else None,
        redoc_url="/redoc" if rt.settings.api_docs else None,
    )
    app.state.rt = rt

    @app.exception_handler(PermanenceError)
    async def _domain_error(request: Request, exc: PermanenceError) -> Response:
        return error_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        answer = _http_error_answer(request, exc)
        if exc.status_code == 405:
            # RFC 9110 15.5.6: a 405 names the methods the resource has (every route of the
            # path, not only the first one Starlette tried).
            answer.headers["Allow"] = allowed_methods(app, request)
        return answer

    def _http_error_answer(request: Request, exc: StarletteHTTPException) -> Response:
        if pages.is_page(request):
            return pages.http_error_page(request, exc.status_code)
        if _is_opendsr(request):
            return opendsr_error(
                request, exc.status_code, "http", str(exc.detail), [str(exc.detail)]
            )
        if exc.status_code == 400:
            # Starlette's own refusals (a body its parsers cannot read): our problem shape.
            return error_response(
                request, BadRequest(f"the request body cannot be read: {exc.detail}")
            )
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> Response:
        if pages.is_page(request):
            # A malformed id or code in a page URL: nothing by that name.
            return pages.http_error_page(request, 404 if request.method == "GET" else 400)
        # Name the location and the problem; never echo the submitted value (personal data).
        problems = []
        message = "the request is not valid"
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            if e.get("type") == "json_invalid":
                message = "the body is not valid JSON"
                problems.append(
                    f"the body is not valid JSON ({e.get('ctx', {}).get('error', 'syntax error')})"
                )
                continue
            problems.append(f"{where}: {e.get('msg', 'invalid')}")
        return error_response(request, ValidationFailed(message, problems))

    include(app, api.router)
    from permanence.staff.credentials_api import router as credentials_router

    include(app, credentials_router)
    from permanence.telephony.api import router as telephony_router

    include(app, telephony_router)
    from permanence.recordings.webhook_api import router as recording_webhook

    include(app, recording_webhook)  # /telephony/{provider}/recording, after the others
    # The queue's webhooks, then its console and admin pages (presence, lines); its devices
    # API is in web/api.py's one list.
    from permanence.routing.api import router as routing_webhooks
    from permanence.routing.pages import router as routing_pages

    include(app, routing_webhooks)
    include(app, routing_pages)
    include_pages(app)
    # The rights pages: the DPO's desk (register, intake, working a request), the callers'
    # public page, then the client's own in the portal.
    from permanence.rights import desk_pages, public_pages, request_pages
    from permanence.rights.pages import router as rights_pages

    for rights_router in (desk_pages.router, request_pages.router, public_pages.router):
        include(app, rights_router, include_in_schema=False)
    include(app, rights_pages)
    from permanence.accounts.notice_pages import router as notice_pages

    include(app, notice_pages)
    from permanence.contracts.pages import router as contract_pages

    include(app, contract_pages)
    from permanence.dpia.pages import router as dpia_pages

    include(app, dpia_pages)
    app.mount("/static", StaticFiles(packages=[("permanence.web", "static")]), name="static")
    # Outermost last: the body limit, then the content-type check, then the checks that read
    # the whole (bounded) body. Their refusals are answered as the routes' errors are.
    app.add_middleware(RejectNulCharacters, respond=refusal)
    app.add_middleware(RejectBrokenEncodings, respond=refusal)
    app.add_middleware(RequireJson, respond=refusal)
    app.add_middleware(LimitRequestBody, max_bytes=rt.settings.max_body_bytes, respond=refusal)
    # SecurityHeaders wraps the whole stack instead (_App), Starlette's 500 page included.
    from permanence.stats.api import router as stats_router
    from permanence.stats.pages import router as stats_pages

    include(app, stats_router)
    from permanence.recordings.api import router as voicemails_router

    include(app, voicemails_router)
    from permanence.recordings.pages import router as voicemail_pages

    include(app, voicemail_pages)
    from permanence.web.pages.voicemails import router as console_voicemail_pages

    include(app, console_voicemail_pages)
    include(app, stats_pages)
    from permanence.evaluations.pages import router as evaluation_pages

    include(app, evaluation_pages)
    from permanence.staff.api import router as staff_router

    include(app, staff_router)
    from permanence.rights.opendsr_api import opendsr_router

    include(app, opendsr_router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """Liveness only: the process answers. Readiness (database, schema, key) is /readyz."""
        return {"status": "ok", "version": __version__}

    from permanence.web import ops

    include(app, ops.router)
    ops.install(app, error_response)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # A bug: Starlette logs the traceback; the client still gets our shape, not text/plain.
        return error_response(request, InternalError("an unexpected error occurred"))

    return app


def include_pages(app: FastAPI) -> None:
    """The pages, kept out of the API schema: the features' own pages and the role surfaces
    of web/pages (console, portal, DPO desk, administration), in this order.

    Each router's routes are added to the app itself (``include``), not gathered in one
    router first."""
    from permanence.audits import pages as audits
    from permanence.breaches import pages as breaches
    from permanence.staff import credentials_pages, signin_pages, training_pages
    from permanence.web.pages import admin, console, console_save, dpo, portal

    for module in (
        signin_pages,
        credentials_pages,
        console,
        console_save,
        portal,
        dpo,
        training_pages,
        breaches,
        admin,
        audits,
    ):
        include(app, module.router, include_in_schema=False)


def include(app: FastAPI, router: APIRouter, *, include_in_schema: bool = True) -> None:
    """``app.include_router(router, include_in_schema=...)``, without FastAPI analysing every
    route a second time (issue 24, ADR 0041).

    FastAPI (0.165) keeps an included router whole and, on the first request, builds each of
    its routes again for the app (the parameters' and responses' validators, the handler):
    about a fifth of the start-up, paid by the first request, /healthz included. A router's
    routes are built for good when declared (its prefix, tags and dependencies are already
    theirs); including it in the app without a prefix changes only the schema flag, the
    dependency overrides' provider (the app) and the defaults left open (response class,
    strict content type, operation ids), resolved against the router and then the app as
    include_router does. So each route is copied with those set and its handler built again
    (no analysis), and the copies go in the app's own list, in the router's order, where
    include_router would have put the router. What the copy could not reproduce is refused
    rather than included differently: a route that is not an ``APIRoute`` (a nested router,
    a mount, a websocket), body or form limits, startup or shutdown handlers, a lifespan, an
    app router with a prefix or dependencies of its own.
    tests/web/test_route_inclusion.py compares the app with one built by include_router."""
    parent = app.router
    if router.on_startup or router.on_shutdown or router.form_limits:
        raise TypeError("include(): this router has handlers or form limits: include_router")
    if type(router.lifespan_context) is not type(APIRouter().lifespan_context):
        raise TypeError("include(): this router has a lifespan: use include_router")
    if parent.prefix or parent.dependencies or parent.max_body_size is not None:
        raise TypeError("include(): the app's router has settings of its own: include_router")
    if parent.tags or parent.responses or parent.callbacks or parent.deprecated:
        raise TypeError("include(): the app's router has settings of its own: include_router")
    routes = []
    for route in router.routes:
        exact = isinstance(route, APIRoute) and type(route) in (APIRoute, ApiRoute)
        if not isinstance(route, APIRoute) or not exact or route.max_body_size is not None:
            raise TypeError(f"include(): {route!r} cannot be copied: use include_router")
        copied = copy.copy(route)
        copied.include_in_schema = route.include_in_schema and include_in_schema
        copied.dependency_overrides_provider = parent.dependency_overrides_provider
        copied.response_class = get_value_or_default(
            route.response_class, router.default_response_class, parent.default_response_class
        )
        copied.strict_content_type = get_value_or_default(
            route.strict_content_type, router.strict_content_type, parent.strict_content_type
        )
        unique_id = get_value_or_default(
            route.generate_unique_id_function,
            router.generate_unique_id_function,
            parent.generate_unique_id_function,
        )
        copied.generate_unique_id_function = unique_id
        generate = unique_id.value if isinstance(unique_id, DefaultPlaceholder) else unique_id
        copied.unique_id = route.operation_id or generate(copied)
        copied.app = request_response(copied.get_route_handler())
        routes.append(copied)
    parent.routes.extend(routes)


def allowed_methods(app: FastAPI, request: Request) -> str:
    """The methods some route of this path answers, for a 405's Allow header."""
    from starlette.routing import Match

    # Asked of the router itself (included routers keep their routes' methods to themselves):
    # the methods for which some route of this path is a full match.
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in app.router.routes
        )
    )


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _is_opendsr(request: Request) -> bool:
    return request.url.path.startswith("/opendsr/")


def opendsr_error(
    request: Request, status: int, reason: str, message: str, problems: list[str]
) -> Response:
    """OpenDSR's error object (spec 7.6): ``{"error": {"code", "message", "errors": [...]}}``;
    a request that is not valid is a 400, as the specification asks. Signed like every
    OpenDSR answer (ADR 0028), when the runtime is there to sign it."""
    from permanence.rights.opendsr_api import signed

    status = 400 if status == 422 else status
    document = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"domain": "permanence", "reason": reason, "message": p} for p in problems],
        }
    }
    rt = getattr(request.app.state, "rt", None) if "app" in request.scope else None
    if isinstance(rt, Runtime):
        return signed(rt, document, status)
    return JSONResponse(document, status_code=status)


def error_response(request: Request, exc: PermanenceError) -> Response:
    """A domain error as the caller reads it: a page for people, OpenDSR's error object for
    the OpenDSR API, the JSON problem for the rest of the API."""
    headers = {}
    if isinstance(exc, TooManyAttempts | ServiceUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    if pages.is_page(request):
        page = pages.error_page(request, exc)
        page.headers.update(headers)
        return page
    if exc.status_code >= 500 and not isinstance(exc, ServiceUnavailable | InternalError):
        log.error("server error %s", exc.code)
    problems = exc.problems if isinstance(exc, ValidationFailed) else [exc.message]
    if _is_opendsr(request):
        answer = opendsr_error(request, exc.status_code, exc.code, exc.message, problems)
        answer.headers.update(headers)
        return answer
    body: dict[str, object] = {"error": exc.code, "message": exc.message}
    if isinstance(exc, ValidationFailed | BadRequest | PayloadTooLarge | UnsupportedMediaType):
        body["problems"] = problems
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def refusal(scope: Scope, exc: PermanenceError) -> ASGIApp:
    """How the input middlewares answer: as the routes would have (page, OpenDSR, API)."""
    return error_response(Request(scope), exc)


def from_environment() -> FastAPI:
    """The application configured from ``PERMANENCE_*``, for ASGI servers run by hand or by a
    process manager: ``uvicorn --factory permanence.web.app:from_environment`` (several
    workers or replicas: each runs its own delivery worker; deliveries are claimed safely)."""
    from permanence.config import get_settings
    from permanence.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level)
    rt = Runtime.from_settings(settings)
    from permanence import health

    try:
        problem = health.schema_problem(health.database_revision(rt.db.engine))
    except Exception as exc:
        from permanence import infra

        if infra.classify(exc) is None:
            raise
        problem = None  # not reachable yet: /readyz answers 503 until it is
    if problem is not None:
        rt.close()
        raise SystemExit(f"refusing to serve: {problem.message}")
    return create_app(rt, deliveries=True)
