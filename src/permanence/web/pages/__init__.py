"""The server-rendered web interface: operator console, client portal, DPO desk and
administration. Each page parses, calls the same services as the JSON API, renders."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from permanence.errors import NotAuthenticated, PermanenceError
from permanence.web.pages import admin, audits, breaches, console, dpo, portal, signin
from permanence.web.pages.render import SignInNeeded, render, signin_redirect
from permanence.web.security import NOT_PAGES

router = APIRouter(include_in_schema=False)
for module in (signin, console, portal, dpo, breaches, admin, audits):
    router.include_router(module.router)


def is_page(request: Request) -> bool:
    return not request.url.path.startswith(NOT_PAGES)


def error_page(request: Request, exc: PermanenceError) -> Response:
    if isinstance(exc, SignInNeeded) or (
        isinstance(exc, NotAuthenticated) and request.method == "GET"
    ):
        return signin_redirect(request)
    return http_error_page(request, exc.status_code, exc.code)


def http_error_page(request: Request, status: int, code: str = "") -> Response:
    if request.headers.get("hx-request"):
        # An htmx request that fails: a short fragment the page can show.
        return render(request, "_error_fragment.html", status_code=status, status=status, code=code)
    return render(request, "error.html", status_code=status, status=status, code=code)
