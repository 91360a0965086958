"""The callers' notice: /n/{account-slug}/{version} and /n/{account-slug} (the latest), no
sign-in. The second layer of the Art. 13 information, generated from the mandate version
(`permanence.mandates.layer2`), in French or English (`?lang=en`), printable. Every version
stays online: a caller told under version 1 can still read it after version 2."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from permanence.accounts import service as accounts
from permanence.accounts.model import AccountStatus
from permanence.context import AccessContext
from permanence.errors import NotFound
from permanence.mandates.layer2 import CNIL_COMPLAINT_URL, notice_path, second_layer
from permanence.web.deps import CurrentRuntime
from permanence.web.pages.render import LANGUAGES, environment, language
from permanence.web.pages.render import translations as catalog

router = APIRouter(prefix="/n", include_in_schema=False)  # a page, not the API
Slug = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Version = Annotated[int, Path(ge=1, le=1_000_000)]
Lang = Annotated[str | None, Query(pattern=r"^(fr|en)$")]


def _notice(
    request: Request, rt: CurrentRuntime, slug: str, version: int | None, lang: str | None
) -> Response:
    with rt.db.session(AccessContext.system("notice:public"), readonly=True) as s:
        account = accounts.account_by_slug(s, slug)
    if account.status != AccountStatus.ACTIVE:
        raise NotFound("no such account")
    with rt.db.session(AccessContext.system("notice:public", account.id), readonly=True) as s:
        row, mandate = accounts.mandate_version(s, account.id, version)
        latest = accounts.mandate_version(s, account.id)[0].version
    chosen = lang if lang in LANGUAGES else language(request)
    tr = catalog(chosen)
    notice = second_layer(mandate, row.version, chosen, tr.gettext)
    html = (
        environment(chosen)
        .get_template("public/notice.html")
        .render(
            viewer=None,
            csrf="",
            path=request.url.path,
            here=request.url.path,
            n=notice,
            latest=latest,
            rights_path=f"/droits/{slug}",
            cnil_url=CNIL_COMPLAINT_URL,
            self_path=notice_path(slug, row.version),
            latest_path=notice_path(slug),
        )
    )
    return HTMLResponse(html)


@router.get("/{slug}", response_class=HTMLResponse)
def latest_notice(request: Request, slug: Slug, rt: CurrentRuntime, lang: Lang = None) -> Response:
    """The notice of the account's current mandate version."""
    return _notice(request, rt, slug, None, lang)


@router.get("/{slug}/{version}", response_class=HTMLResponse)
def notice(
    request: Request, slug: Slug, version: Version, rt: CurrentRuntime, lang: Lang = None
) -> Response:
    """The notice of one mandate version, as callers under it were told."""
    return _notice(request, rt, slug, version, lang)
