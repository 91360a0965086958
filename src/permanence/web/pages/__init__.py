"""The server-rendered web interface: operator console, client portal, DPO desk and
administration. Each page parses, calls the same services as the JSON API, renders."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import Response

from permanence.errors import NotAuthenticated, PermanenceError
from permanence.staff.training import TrainingRequired
from permanence.web.pages import (
    admin,
    audits,
    breaches,
    console,
    credentials,
    dpo,
    portal,
    signin,
    training,
)
from permanence.web.pages.render import SignInNeeded, redirect, render, signin_redirect
from permanence.web.security import NOT_PAGES

router = APIRouter(include_in_schema=False)
for module in (signin, credentials, console, portal, dpo, training, breaches, admin, audits):
    router.include_router(module.router)


def is_page(request: Request) -> bool:
    return not request.url.path.startswith(NOT_PAGES)


def error_page(request: Request, exc: PermanenceError) -> Response:
    if isinstance(exc, SignInNeeded) or (
        isinstance(exc, NotAuthenticated) and request.method == "GET"
    ):
        return signin_redirect(request)
    if (
        isinstance(exc, TrainingRequired)
        and exc.undertaking
        and not request.headers.get("hx-request")
    ):
        # The current confidentiality undertaking is not signed: to the page that asks for it,
        # then back where they were going (a form's page for a refused submission).
        back = str(request.url) if request.method == "GET" else request.headers.get("referer", "")
        return redirect("/engagement?suite=" + quote(_local_path(back), safe="/"))
    return http_error_page(request, exc.status_code, exc.code)


def http_error_page(request: Request, status: int, code: str = "") -> Response:
    if request.headers.get("hx-request"):
        # An htmx request that fails: a short fragment the page can show.
        return render(request, "_error_fragment.html", status_code=status, status=status, code=code)
    return render(request, "error.html", status_code=status, status=status, code=code)


def _local_path(target: str) -> str:
    """The path of a URL of this site (the referer of a refused form), else the home."""
    parts = urlsplit(target)
    return parts.path + (f"?{parts.query}" if parts.query else "") if parts.path else "/"
