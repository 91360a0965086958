"""The callers' page: /droits/{account-slug}, no sign-in. The caller chooses a right, gives
their phone number and/or e-mail address, receives a one-time code on a channel already on
file, confirms it, and is given the request's reference and due date (``rights.public``).

The same answer whether the caller is known or not; forms carry a double-submit CSRF token
(a cookie scoped to /droits, as the sign-in form does before any session exists); the token
of the code step goes in the form, never in a URL.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Form, Path, Request
from fastapi.responses import HTMLResponse, Response

from permanence.accounts import service as accounts
from permanence.accounts.model import Account, AccountStatus
from permanence.context import AccessContext
from permanence.errors import NotFound, PermanenceError, ValidationFailed
from permanence.rights import clock, desk, public
from permanence.rights import service as rights
from permanence.rights.api import _outbox
from permanence.web.deps import CurrentRuntime, secure_cookies
from permanence.web.pages.render import language, render
from permanence.web.pages.render import translations as catalog

log = logging.getLogger("permanence.rights")
router = APIRouter(prefix="/droits")
CSRF_COOKIE = "permanence_droits"
Slug = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


def _account(rt: CurrentRuntime, slug: str) -> tuple[Account, str, str]:
    """The account, its controller's name and the contact for rights (from the mandate)."""
    with rt.db.session(AccessContext.system("rights:public"), readonly=True) as s:
        account = accounts.account_by_slug(s, slug)
    if account.status != AccountStatus.ACTIVE:
        raise NotFound("no such account")
    with rt.db.session(AccessContext.system("rights:public", account.id), readonly=True) as s:
        _row, mandate = accounts.mandate_version(s, account.id)
    return account, mandate.controller.name, mandate.controller.rights_contact


def _page(
    request: Request,
    rt: CurrentRuntime,
    slug: str,
    template: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response:
    _account_row, controller, contact = _account(rt, slug)
    # One token per visit (the back button keeps working), a new one when none is set.
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = render(
        request,
        template,
        None,
        status_code=status_code,
        csrf=token,
        slug=slug,
        controller=controller,
        contact=contact,
        sms=_outbox(request, rt).sms is not None,
        kinds=[k.value for k in public.PUBLIC_KINDS],
        **context,
    )
    response.set_cookie(
        CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        max_age=3600,
        path="/droits",
    )
    return response


def _form(
    request: Request,
    rt: CurrentRuntime,
    slug: str,
    *,
    values: dict[str, str] | None = None,
    problems: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    return _page(
        request,
        rt,
        slug,
        "public/rights.html",
        status_code=status_code,
        values=values or {},
        problems=problems or [],
    )


def _csrf_ok(request: Request, sent: str) -> bool:
    expected = request.cookies.get(CSRF_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected.encode(), sent.encode())


def _reasons(request: Request, exc: PermanenceError) -> list[str]:
    found = exc.problems if isinstance(exc, ValidationFailed) and exc.problems else []
    tr = catalog(language(request))
    return [tr.gettext(p) for p in (found or [exc.message])]


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.get("/{slug}", response_class=HTMLResponse)
def rights_form(request: Request, slug: Slug, rt: CurrentRuntime) -> Response:
    """Choose a right, give a phone number and/or an e-mail address."""
    return _form(request, rt, slug)


@router.post("/{slug}", response_class=HTMLResponse)
def ask(
    request: Request,
    slug: Slug,
    rt: CurrentRuntime,
    tasks: BackgroundTasks,
    droit: Annotated[str, Form(max_length=32)] = "",
    telephone: Annotated[str, Form(max_length=64)] = "",
    email: Annotated[str, Form(max_length=320)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """A code to the channel on file if we know the caller; the same page either way."""
    values = {"droit": droit, "telephone": telephone, "email": email}
    tr = catalog(language(request))
    if not _csrf_ok(request, csrf_token):
        problems = [tr.gettext("The form had expired: please try again.")]
        return _form(request, rt, slug, values=values, problems=problems, status_code=403)
    account, _name, _contact = _account(rt, slug)
    try:
        with rt.db.session(AccessContext.system("rights:public", account.id)) as s:
            asked = public.ask_code(
                s,
                rt.keyring,
                _outbox(request, rt),
                kind=droit,
                phone=telephone or None,
                email=email or None,
                client=_client(request),
            )
    except PermanenceError as exc:
        return _form(
            request,
            rt,
            slug,
            values=values,
            problems=_reasons(request, exc),
            status_code=exc.status_code if exc.status_code >= 400 else 422,
        )
    if asked.send is not None:  # after the answer: the same time for a stranger
        tasks.add_task(_send_code, asked.send)
    return _page(request, rt, slug, "public/rights_code.html", token=asked.token, problems=[])


def _send_code(send: Callable[[], None]) -> None:
    try:
        send()
    except Exception as exc:  # the caller asks again; nothing personal in the log
        log.warning("rights: a one-time code could not be sent (%s)", type(exc).__name__)


@router.post("/{slug}/confirmer", response_class=HTMLResponse)
def confirm(
    request: Request,
    slug: Slug,
    rt: CurrentRuntime,
    jeton: Annotated[str, Form(max_length=100)] = "",
    code: Annotated[str, Form(max_length=12)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The code: the request is taken in, verified; its reference and due date shown."""
    tr = catalog(language(request))
    if not _csrf_ok(request, csrf_token):
        problems = [tr.gettext("The form had expired: please try again.")]
        return _form(request, rt, slug, problems=problems, status_code=403)
    account, _name, _contact = _account(rt, slug)
    try:
        with rt.db.session(AccessContext.system("rights:public", account.id)) as s:
            req = public.confirm(s, rt.keyring, token=jeton, code=code, client=_client(request))
            if req is not None:
                rights.acknowledge(s, rt.keyring, _outbox(request, rt), req, {})
            done = (
                (desk.reference(req), clock.local_day(req.due_at), req.kind)
                if req is not None
                else None
            )
    except public.CodeRefused as exc:
        return _form(request, rt, slug, problems=_reasons(request, exc), status_code=422)
    except PermanenceError as exc:
        return _page(
            request,
            rt,
            slug,
            "public/rights_code.html",
            token=jeton,
            problems=_reasons(request, exc),
            status_code=exc.status_code,
        )
    if done is None:
        return _page(
            request,
            rt,
            slug,
            "public/rights_code.html",
            token=jeton,
            problems=[tr.gettext("This code is not the one sent.")],
            status_code=422,
        )
    reference, due, kind = done
    return _page(
        request, rt, slug, "public/rights_done.html", reference=reference, due=due, kind=kind
    )
