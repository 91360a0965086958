"""What every page shares: who is looking (the session cookie), the CSRF check on forms,
the language, and rendering a template.

Pages use the JSON API's session cookie and sign-in service. A page request without a valid
session is redirected to the sign-in page; a form without the session's CSRF token is refused.
Nothing personal goes into a URL or a page title: URLs carry ids and codes only.
"""

from __future__ import annotations

import datetime as dt
import gettext
import hmac
import re
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time
from babel.numbers import format_decimal
from babel.support import Translations
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from permanence.context import STAFF_ROLES, AccessContext, Role
from permanence.errors import NotAuthenticated, PermissionDenied
from permanence.render import percent
from permanence.runtime import Runtime
from permanence.staff import auth
from permanence.web.deps import SESSION_COOKIE, Principal, runtime

if TYPE_CHECKING:
    import jinja2

HERE = Path(__file__).resolve().parent.parent
LOCALE_DIR = HERE / "locale"
LANGUAGES = ("fr", "en")
LANG_COOKIE = "permanence_lang"
CSRF_FIELD = "csrf_token"
# The pre-session CSRF cookie of the sign-in form (double submit: no session exists yet).
SIGNIN_CSRF_COOKIE = "permanence_signin"
TIMEZONE = ZoneInfo("Europe/Paris")


class SignInNeeded(NotAuthenticated):
    """A page asked for without a valid session: the app redirects to the sign-in page."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in person looking at a page."""

    principal: Principal
    display_name: str
    csrf_token: str

    @property
    def role(self) -> Role:
        return self.principal.role

    @property
    def is_staff(self) -> bool:
        return self.principal.is_staff

    @property
    def user_id(self) -> uuid.UUID:
        assert self.principal.user_id is not None
        return self.principal.user_id

    def context(self, reason: str, account_id: uuid.UUID | None = None) -> AccessContext:
        return self.principal.context(reason, account_id)


def _viewer(request: Request, rt: Runtime) -> Viewer:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInNeeded("sign in first")
    ctx = AccessContext.system("auth:session")
    try:
        with rt.db.session(ctx, readonly=True) as s:
            user, ws = auth.resolve_session(s, token)
            viewer = Viewer(
                Principal(
                    user_id=user.id,
                    role=user.role,
                    account_id=user.account_id,
                    scopes=None,
                    session_token=token,
                    csrf_token=ws.csrf_token,
                ),
                user.display_name,
                ws.csrf_token,
            )
            touch = auth.needs_touch(ws)
    except NotAuthenticated:
        raise SignInNeeded("sign in again") from None
    if touch:
        with rt.db.session(ctx) as s:
            auth.touch(s, token)
    return viewer


def page_viewer(request: Request, rt: Annotated[Runtime, Depends(runtime)]) -> Viewer:
    """The viewer of a page (GET)."""
    return _viewer(request, rt)


async def form_viewer(request: Request, rt: Annotated[Runtime, Depends(runtime)]) -> Viewer:
    """The viewer of a form submission: the form (or htmx's header) must carry the session's
    CSRF token."""
    viewer = _viewer(request, rt)
    sent = request.headers.get("x-csrf-token", "")
    if not sent:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else ""
    if not hmac.compare_digest(sent.encode(), viewer.csrf_token.encode()):
        raise PermissionDenied("this form has expired: reload the page and try again")
    return viewer


def roles(*allowed: Role, form: bool = False) -> Any:
    """A dependency: a viewer in one of ``allowed`` roles (others get a 403 page)."""

    def check(viewer: Viewer) -> Viewer:
        if viewer.role not in allowed:
            raise PermissionDenied("your role does not give access to this page")
        return viewer

    if form:

        async def check_form(v: Annotated[Viewer, Depends(form_viewer)]) -> Viewer:
            return check(v)

        return Depends(check_form)

    def check_page(v: Annotated[Viewer, Depends(page_viewer)]) -> Viewer:
        return check(v)

    return Depends(check_page)


def home_of(role: Role) -> str:
    return {
        Role.OPERATOR: "/console",
        Role.SUPERVISOR: "/console",
        Role.CLIENT: "/portail/messages",
        Role.DPO: "/dpo/journal",
        Role.ADMIN: "/admin/comptes",
    }.get(role, "/")


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go back to (never another site: no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def language(request: Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    # Accept-Language fallback: the first of our languages the browser names, else French.
    best, best_q = "fr", -1.0
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower()[:2]
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if lang in LANGUAGES and q > best_q:
            best, best_q = lang, q
    return best


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """Message ids are English; French comes from the catalog (compiled .mo committed)."""
    return Translations.load(str(LOCALE_DIR), [lang], domain="messages")


def _local(value: dt.datetime) -> dt.datetime:
    return value.astimezone(TIMEZONE)


def _other_year(value: dt.date) -> bool:
    """Dates show their year when it is not the current one (Paris time)."""
    year = _local(value).year if isinstance(value, dt.datetime) else value.year
    return year != dt.datetime.now(TIMEZONE).year


def _duration(value: dt.timedelta) -> str:
    """A clock's distance, "3 h 05 min" (sign dropped: the template says before or after)."""
    minutes = abs(int(value.total_seconds())) // 60
    return f"{minutes // 60} h {minutes % 60:02d} min"


_COUNT = re.compile(r"\d+")


@dataclass(frozen=True)
class Worded:
    """A line kept in code in English, in the page's language when the catalogue has it."""

    text: str
    translated: bool


def counted(text: str, lang: str) -> Worded:
    """A line with counts in it ("3 of 5 staff member(s) may not handle data"): its numbers
    become ``%(n1)s``, ``%(n2)s``… and that wording is looked up in the catalogue; a line the
    catalogue lacks stays English (the page marks it ``lang="en"``)."""
    if lang == "en":
        return Worded(text, True)
    numbers = _COUNT.findall(text)
    names = iter(range(1, len(numbers) + 1))
    key = _COUNT.sub(lambda _m: f"%(n{next(names)})s", text.replace("%", "%%"))
    found = translations(lang).gettext(key)
    if found == key:
        return Worded(text, False)
    return Worded(found % {f"n{i}": n for i, n in enumerate(numbers, start=1)}, True)


@cache
def environment(lang: str) -> jinja2.Environment:
    import jinja2  # when the first page is rendered: not at the service's start

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("permanence.web", "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.filters["when"] = lambda v: (
        format_datetime(
            _local(v), "EEE d MMM y, HH:mm" if _other_year(v) else "EEE d MMM, HH:mm", locale=lang
        )
        if v
        else ""
    )
    env.filters["day"] = lambda v: (
        format_date(v, "EEEE d MMMM y" if _other_year(v) else "EEEE d MMMM", locale=lang)
        if v
        else ""
    )
    env.filters["hour"] = lambda v: format_time(_local(v), "HH:mm", locale=lang) if v else ""
    env.filters["local_iso"] = lambda v: _local(v).strftime("%Y-%m-%dT%H:%M") if v else ""
    env.filters["duration"] = _duration
    # Numbers in the page's language: "1 234", "12,5 %" on French pages (babel.numbers).
    env.filters["number"] = lambda v: format_decimal(v, locale=lang) if v is not None else "–"
    env.filters["percent"] = lambda v: percent(v, lang)
    env.filters["short_day"] = lambda v: (
        format_date(v, "d MMM y" if _other_year(v) else "d MMM", locale=lang) if v else ""
    )
    # A wording kept in code in English (a compliance check's title, a contract clause):
    # its translation when the catalogue has one (escaped like any value, never markup).
    env.filters["tr"] = lambda v: translations(lang).gettext(v) if v else ""
    env.filters["counted"] = lambda v: counted(v, lang)
    env.globals["lang"] = lang
    env.globals["other_lang"] = "en" if lang == "fr" else "fr"
    env.globals["STAFF_ROLES"] = STAFF_ROLES
    return env


def render(
    request: Request,
    template: str,
    viewer: Viewer | None = None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    lang = language(request)
    html = (
        environment(lang)
        .get_template(template)
        .render(
            viewer=viewer,
            csrf=viewer.csrf_token if viewer else context.pop("csrf", ""),
            path=request.url.path,
            here=request.url.path + (("?" + request.url.query) if request.url.query else ""),
            **context,
        )
    )
    return HTMLResponse(html, status_code=status_code)


def fragment(request: Request, template: str, **context: Any) -> str:
    return environment(language(request)).get_template(template).render(**context)


def redirect(url: str) -> RedirectResponse:
    """After a form: see the result with a GET (no resubmission on reload)."""
    return RedirectResponse(url, status_code=303)


def signin_redirect(request: Request) -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return redirect("/connexion?suite=" + quote(target, safe="/"))


def reauth_redirect(target: str) -> Response:
    return redirect("/confirmer?suite=" + quote(target, safe="/"))


PageViewer = Annotated[Viewer, Depends(page_viewer)]
FormViewer = Annotated[Viewer, Depends(form_viewer)]
