"""Administration: client accounts and their numbers, the mandate editor (YAML with
validation and a diff before saving; import and export; diff between versions), key
rotation, users and roles."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from permanence.accounts import service as accounts
from permanence.accounts.model import AccountKind
from permanence.context import Role
from permanence.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from permanence.mandates.hours_words import opening_hours_view
from permanence.mandates.mandate import Mandate
from permanence.mandates.parsing import diff_mandates, dump_mandate
from permanence.staff import auth
from permanence.staff import service as staff
from permanence.staff.credentials_pages import PASSWORD_MESSAGES
from permanence.staff.passwords import WeakPassword
from permanence.web.deps import CurrentRuntime, session_of, unit_of_work
from permanence.web.pages.render import (
    Viewer,
    language,
    reauth_redirect,
    redirect,
    render,
    roles,
)

router = APIRouter(prefix="/admin")
Admin = Annotated[Viewer, roles(Role.ADMIN)]
AdminForm = Annotated[Viewer, roles(Role.ADMIN, form=True)]
MAX_MANDATE_BYTES = 256 * 1024
ROLES = [r for r in Role if r is not Role.SYSTEM]


@router.get("", response_class=HTMLResponse)
def admin_home() -> Response:
    return redirect("/admin/comptes")


def _accounts_page(
    request: Request,
    viewer: Viewer,
    rt: CurrentRuntime,
    *,
    status_code: int = 200,
    problems: list[str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    with rt.db.session(viewer.context("admin:accounts"), readonly=True) as s:
        rows = accounts.list_accounts(s)
    return render(
        request,
        "admin/accounts.html",
        viewer,
        status_code=status_code,
        rows=rows,
        kinds=list(AccountKind),
        problems=problems or [],
        values=values or {},
    )


@router.get("/comptes", response_class=HTMLResponse)
def account_list(request: Request, viewer: Admin, rt: CurrentRuntime) -> Response:
    return _accounts_page(request, viewer, rt)


@router.post("/comptes")
def create_account(
    request: Request,
    viewer: AdminForm,
    rt: CurrentRuntime,
    slug: Annotated[str, Form(max_length=64)],
    nom: Annotated[str, Form(max_length=200)],
    type_: Annotated[str, Form(alias="type", max_length=16)],
) -> Response:
    try:
        kind = AccountKind(type_)
        with rt.db.session(viewer.context("admin:account_create")) as s:
            account = accounts.create_account(s, rt.keyring, slug=slug, name=nom, kind=kind)
            target = f"/admin/comptes/{account.id}"
    except (ValidationFailed, Conflict, ValueError) as exc:
        message = exc.message if isinstance(exc, ValidationFailed | Conflict) else "bad kind"
        return _accounts_page(
            request,
            viewer,
            rt,
            status_code=422,
            problems=[message],
            values={"slug": slug, "nom": nom, "type": type_},
        )
    return redirect(target)


@router.get("/comptes/{account_id}", response_class=HTMLResponse)
def account_page(
    request: Request, account_id: uuid.UUID, viewer: Admin, rt: CurrentRuntime
) -> Response:
    with unit_of_work(rt, viewer.principal, account_id, "admin:account", readonly=True) as s:
        account = accounts.get_account(s, account_id)
        dids = accounts.dids_of(s, account_id)
        versions = accounts.mandate_versions(s, account_id)
    return render(
        request,
        "admin/account.html",
        viewer,
        account=account,
        dids=dids,
        versions=versions,
        rotated=request.query_params.get("cles"),
    )


@router.get("/comptes/{account_id}/mandat", response_class=HTMLResponse)
def mandate_editor(
    request: Request, account_id: uuid.UUID, viewer: Admin, rt: CurrentRuntime
) -> Response:
    with unit_of_work(rt, viewer.principal, account_id, "admin:mandate", readonly=True) as s:
        account = accounts.get_account(s, account_id)
        shown: Mandate | None = None
        try:
            text = accounts.export_mandate(s, account_id, None, "yaml")
            _row, shown = accounts.mandate_version(s, account_id)
        except NotFound:
            text = f"account: {account.slug}\n"
    return render(
        request,
        "admin/mandate.html",
        viewer,
        account=account,
        text=text,
        shown=shown,
        hours_view=opening_hours_view(shown, language(request)) if shown else None,
        diff=None,
        problems=[],
        saved=request.query_params.get("enregistre"),
    )


async def _draft(texte: str, fichier: UploadFile | None) -> str:
    if fichier is not None and fichier.filename:
        raw = await fichier.read(MAX_MANDATE_BYTES + 1)
        if len(raw) > MAX_MANDATE_BYTES:
            raise ValidationFailed("the file is larger than 256 KiB")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed("the file is not UTF-8 text") from None
    if len(texte.encode()) > MAX_MANDATE_BYTES:
        raise ValidationFailed("the text is larger than 256 KiB")
    return texte


@router.post("/comptes/{account_id}/mandat", response_class=HTMLResponse)
async def mandate_submit(
    request: Request,
    account_id: uuid.UUID,
    viewer: AdminForm,
    rt: CurrentRuntime,
    texte: Annotated[str, Form()] = "",
    action: Annotated[Literal["apercu", "enregistrer"], Form()] = "apercu",
    fichier: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Check a draft (problems, or the diff with the current version); save it on confirm."""
    problems: list[str] = []
    diff: str | None = None
    shown: Mandate | None = None  # the draft, whose opening hours are shown in words
    try:
        text = await _draft(texte, fichier)
    except ValidationFailed as exc:
        text, problems = texte, exc.problems
    reason = "admin:mandate_import" if action == "enregistrer" else "admin:mandate"
    with unit_of_work(rt, viewer.principal, account_id, reason) as s:
        account = accounts.get_account(s, account_id)
        if not problems:
            try:
                shown, diff = accounts.preview_mandate(s, text, account_id=account_id)
                if action == "enregistrer":
                    row = accounts.import_mandate(s, text, account_id=account_id)
                    return redirect(f"/admin/comptes/{account_id}/mandat?enregistre={row.version}")
            except (ValidationFailed, Conflict) as exc:
                problems = exc.problems if isinstance(exc, ValidationFailed) else [exc.message]
                diff = None
    return render(
        request,
        "admin/mandate.html",
        viewer,
        status_code=422 if problems else 200,
        account=account,
        text=text,
        shown=None if problems else shown,
        hours_view=opening_hours_view(shown, language(request)) if shown and not problems else None,
        diff=diff,
        problems=problems,
        saved=None,
    )


@router.get("/comptes/{account_id}/mandat.{fmt}")
def mandate_export(
    account_id: uuid.UUID,
    fmt: Literal["yaml", "json"],
    viewer: Admin,
    rt: CurrentRuntime,
    version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> Response:
    with unit_of_work(rt, viewer.principal, account_id, "admin:mandate_export", readonly=True) as s:
        account = accounts.get_account(s, account_id)
        text = accounts.export_mandate(s, account_id, version, fmt)
    name = f"{account.slug}-v{version}" if version else account.slug
    media = "application/yaml" if fmt == "yaml" else "application/json"
    return Response(
        text,
        media_type=f"{media}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="mandat-{name}.{fmt}"'},
    )


@router.get("/comptes/{account_id}/mandat-diff", response_class=HTMLResponse)
def mandate_diff(
    request: Request,
    account_id: uuid.UUID,
    viewer: Admin,
    rt: CurrentRuntime,
    de: Annotated[int, Query(ge=1, le=1_000_000)],
    a: Annotated[int, Query(ge=1, le=1_000_000)],
) -> Response:
    with unit_of_work(rt, viewer.principal, account_id, "admin:mandate", readonly=True) as s:
        account = accounts.get_account(s, account_id)
        _r1, old = accounts.mandate_version(s, account_id, de)
        _r2, new = accounts.mandate_version(s, account_id, a)
    return render(
        request,
        "admin/diff.html",
        viewer,
        account=account,
        de=de,
        a=a,
        diff=diff_mandates(old, new),
        same=dump_mandate(old) == dump_mandate(new),
    )


@router.post("/comptes/{account_id}/cles")
def rotate_keys(account_id: uuid.UUID, viewer: AdminForm, rt: CurrentRuntime) -> Response:
    """A new key-encryption key for the account: only after re-authentication."""
    try:
        auth.require_recent_auth(session_of(rt, viewer.principal))
    except PermissionDenied:
        return reauth_redirect(f"/admin/comptes/{account_id}")
    with unit_of_work(rt, viewer.principal, account_id, "admin:keys_rotate") as s:
        version, _count = accounts.rotate_keys(s, rt.keyring, account_id)
    return redirect(f"/admin/comptes/{account_id}?cles={version}")


def _users_page(
    request: Request,
    viewer: Viewer,
    rt: CurrentRuntime,
    *,
    status_code: int = 200,
    problems: list[str] | None = None,
    created: tuple[str, str | None] | None = None,
) -> Response:
    with rt.db.session(viewer.context("admin:users"), readonly=True) as s:
        users = staff.list_users(s)
        names = {a.id: a.name for a in accounts.list_accounts(s)}
    return render(
        request,
        "admin/users.html",
        viewer,
        status_code=status_code,
        users=users,
        account_names=names,
        roles=ROLES,
        problems=problems or [],
        created=created,
    )


@router.get("/utilisateurs", response_class=HTMLResponse)
def user_list(request: Request, viewer: Admin, rt: CurrentRuntime) -> Response:
    return _users_page(request, viewer, rt)


@router.post("/utilisateurs", response_class=HTMLResponse)
def create_user(
    request: Request,
    viewer: AdminForm,
    rt: CurrentRuntime,
    email: Annotated[str, Form(max_length=254)],
    nom: Annotated[str, Form(max_length=200)],
    role: Annotated[str, Form(max_length=16)],
    mot_de_passe: Annotated[str, Form(max_length=200)],
    compte: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """A new user; a staff member's TOTP enrolment URI is shown once, here."""
    try:
        chosen = Role(role)
        account_id = uuid.UUID(compte) if compte else None
        with rt.db.session(viewer.context("admin:user_create")) as s:
            new = staff.create_user(
                s,
                rt.keyring,
                email=email,
                display_name=nom,
                role=chosen,
                password=mot_de_passe,
                account_id=account_id,
            )
            created = (new.user.email, new.totp_uri)
    except WeakPassword as exc:  # said in the reader's language
        problem = PASSWORD_MESSAGES[exc.reason]
        return _users_page(request, viewer, rt, status_code=422, problems=[problem])
    except (ValidationFailed, Conflict) as exc:
        return _users_page(
            request,
            viewer,
            rt,
            status_code=422,
            problems=exc.problems if isinstance(exc, ValidationFailed) else [exc.message],
        )
    except ValueError:
        return _users_page(request, viewer, rt, status_code=422, problems=["unknown role"])
    return _users_page(request, viewer, rt, created=created)
