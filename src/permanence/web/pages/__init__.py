"""The server-rendered web interface: what every page shares (the error pages, the form kept
when the database fails; rendering in ``render``) and the pages that gather several features
for one role: the operator console, the client portal, the DPO desk, the administration.
A feature's own pages live beside it (``<feature>/pages.py``, ADR 0021); ``web.app`` puts
them all in one router. Each page parses, calls the same services as the JSON API, renders."""

from __future__ import annotations

import asyncio
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import Response

from permanence.errors import NotAuthenticated, PermanenceError
from permanence.staff.training import TrainingRequired
from permanence.web.pages.render import SignInNeeded, redirect, render, signin_redirect
from permanence.web.security import NOT_PAGES


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
    typed = getattr(request.state, "typed", None) if status in (503, 507) else None
    return render(request, "error.html", status_code=status, status=status, code=code, typed=typed)


# A form's body larger than this is not shown back (forms here are a few kilobytes).
_MAX_TYPED = 64 * 1024


async def keep_typed(request: Request) -> None:
    """Before a page's POST is answered 503/507 (the database or its disk failed): the form's
    text values, so the error page shows them in a form that sends them again - an operator
    never retypes a message. Files cannot be sent back and are left out. The values go back
    only to the browser that sent them, on a page that is never cached."""
    if request.method != "POST" or not is_page(request) or request.headers.get("hx-request"):
        return
    kind = request.headers.get("content-type", "")
    if not kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return
    if int(request.headers.get("content-length") or 0) > _MAX_TYPED:
        return
    try:
        # Read by the route already (cached), else read now; a body some other reader took
        # is not waited for.
        form = await asyncio.wait_for(request.form(), timeout=1.0)
    except Exception:  # nothing to show back is the fallback
        return
    request.state.typed = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]


def _local_path(target: str) -> str:
    """The path of a URL of this site (the referer of a refused form), else the home."""
    parts = urlsplit(target)
    return parts.path + (f"?{parts.query}" if parts.query else "") if parts.path else "/"
