"""The DPO's rights desk: the register of every account's requests (open and closed, with
filters and a CSV export), intake of a request received by phone, e-mail, letter or in
person, and working one request — verification, preview and execution, extension, refusal.

Every action is one call to ``rights.service`` (the JSON API calls the same functions) in one
transaction. A refusal shows the page again with what was typed and the reasons in the
reader's language; the transaction is rolled back, so nothing is half-written. URLs carry
account and request ids only; identifiers searched for are posted, never put in a URL.

This module: the register and intake, and what the desk's pages share; working one request
is ``rights.request_pages`` (same prefix).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from permanence.accounts import service as accounts
from permanence.context import Role
from permanence.db import utcnow
from permanence.errors import PermanenceError, ValidationFailed
from permanence.messages.service import UndeclaredDataInText
from permanence.rights import clock, desk
from permanence.rights import service as rights
from permanence.rights.api import _outbox
from permanence.rights.model import OPEN_STATES, Kind, RightsRequest, State
from permanence.subjects import service as subjects
from permanence.web.deps import CurrentRuntime, unit_of_work
from permanence.web.pages.findings import finding_texts
from permanence.web.pages.render import TIMEZONE, Viewer, language, redirect, render, roles
from permanence.web.pages.render import translations as catalog

router = APIRouter(prefix="/dpo/droits")
Desk = Annotated[Viewer, roles(Role.DPO, Role.ADMIN)]
DeskForm = Annotated[Viewer, roles(Role.DPO, form=True)]
SHORT = 64
TEXT = 2000
MAX_MATCHES = 10
RECEIVED_VIA = ("phone", "email", "letter", "in_person")
CONFIRMED_METHODS = rights.CONFIRMED_METHODS


def _t(request: Request, text: str) -> str:
    return catalog(language(request)).gettext(text)


def _problems(request: Request, exc: PermanenceError) -> list[str]:
    """The service's reasons, in the reader's language (the catalogue holds their French)."""
    if isinstance(exc, UndeclaredDataInText):  # a rectification's text, screened
        return finding_texts(exc.findings, language(request))
    found = exc.problems if isinstance(exc, ValidationFailed) and exc.problems else []
    return [_t(request, p) for p in (found or [exc.message])]


def _account_names(rt: CurrentRuntime, viewer: Viewer) -> list[tuple[uuid.UUID, str, str]]:
    with rt.db.session(viewer.context("dpo:rights"), readonly=True) as s:
        return [(a.id, a.name, a.slug) for a in accounts.list_accounts(s)]


# -- the register ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    account_id: uuid.UUID
    account: str
    slug: str
    request: RightsRequest
    reference: str
    days_left: int
    closed: bool
    overdue: bool


def _day(value: str, name: str) -> dt.date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"{name}: not a date") from None


def _filters(etat: str, droit: str, retard: str, du: str, au: str) -> desk.Filters:
    return desk.Filters(
        state=etat,
        kind=droit,
        overdue=retard == "1",
        received_from=_day(du, "from"),
        received_to=_day(au, "to"),
    )


def _register_rows(
    rt: CurrentRuntime,
    viewer: Viewer,
    filters: desk.Filters,
    only: uuid.UUID | None,
) -> list[Row]:
    now = utcnow()
    rows: list[Row] = []
    open_values = {s.value for s in OPEN_STATES}
    for account_id, name, slug in _account_names(rt, viewer):
        if only is not None and account_id != only:
            continue
        with unit_of_work(rt, viewer.principal, account_id, "dpo:rights", readonly=True) as s:
            for r in desk.register(s, filters, now):
                is_open = r.state in open_values
                rows.append(
                    Row(
                        account_id,
                        name,
                        slug,
                        r,
                        desk.reference(r),
                        clock.days_left(r.due_at, now),
                        not is_open,
                        is_open and now > r.due_at,
                    )
                )
    rows.sort(key=lambda row: (row.closed, row.days_left if not row.closed else 0))
    return rows


Filter = Annotated[str, Query(max_length=SHORT)]


@router.get("", response_class=HTMLResponse)
def register_page(
    request: Request,
    viewer: Desk,
    rt: CurrentRuntime,
    etat: Filter = "",
    droit: Filter = "",
    compte: Filter = "",
    retard: Filter = "",
    du: Filter = "",
    au: Filter = "",
) -> Response:
    """The register: every account's requests, open ones first (the least time left first),
    then closed ones; filters on state, right, account, overdue and the day received."""
    values = {"etat": etat, "droit": droit, "compte": compte, "retard": retard, "du": du, "au": au}
    problems: list[str] = []
    rows: list[Row] = []
    try:
        only = uuid.UUID(compte) if compte else None
        filters = _filters(etat, droit, retard, du, au)
        filters.check()
        rows = _register_rows(rt, viewer, filters, only)
    except ValueError:
        problems = [_t(request, "account: not a client account")]
    except ValidationFailed as exc:
        problems = _problems(request, exc)
    query = request.url.query
    return render(
        request,
        "dpo/rights.html",
        viewer,
        status_code=422 if problems else 200,
        rows=rows,
        values=values,
        problems=problems,
        clients=_account_names(rt, viewer),
        kinds=[k.value for k in Kind],
        states=[s.value for s in State],
        csv_url="/dpo/droits/registre.csv" + ("?" + query if query else ""),
    )


@router.get("/registre.csv")
def register_csv(
    request: Request,
    viewer: Desk,
    rt: CurrentRuntime,
    etat: Filter = "",
    droit: Filter = "",
    compte: Filter = "",
    retard: Filter = "",
    du: Filter = "",
    au: Filter = "",
) -> Response:
    """The register as CSV (the same filters): references, codes, dates, pseudonymous ids."""
    try:
        only = uuid.UUID(compte) if compte else None
    except ValueError:
        raise ValidationFailed("account: not a client account") from None
    rows = _register_rows(rt, viewer, _filters(etat, droit, retard, du, au), only)
    body = desk.to_csv(desk.csv_rows(((r.slug, r.request) for r in rows), utcnow()))
    with rt.db.session(viewer.context("dpo:rights_export")) as s:
        from permanence.audit import service as audit

        audit.record(s, "rights.register_export", "rights_register", details={"rows": len(rows)})
    stamp = utcnow().astimezone(TIMEZONE).strftime("%Y-%m-%d")
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="registre-droits-{stamp}.csv"'},
    )


# -- intake ------------------------------------------------------------------------------------


def _intake_page(
    request: Request,
    viewer: Viewer,
    rt: CurrentRuntime,
    *,
    values: dict[str, str] | None = None,
    problems: list[str] | None = None,
    matches: list[tuple[uuid.UUID, subjects.Identity]] | None = None,
    searched: bool = False,
    status_code: int = 200,
) -> Response:
    now = utcnow().astimezone(TIMEZONE).strftime("%Y-%m-%dT%H:%M")
    return render(
        request,
        "dpo/rights_new.html",
        viewer,
        status_code=status_code,
        values=values or {"recu_le": now, "recu_par": "phone"},
        problems=problems or [],
        matches=matches or [],
        searched=searched,
        clients=_account_names(rt, viewer),
        kinds=[k.value for k in Kind],
        received_via=RECEIVED_VIA,
    )


@router.get("/nouvelle", response_class=HTMLResponse)
def intake_form(request: Request, viewer: Desk, rt: CurrentRuntime) -> Response:
    """Take a request in: the account, the right, how it reached us and when (the clock
    starts then), who asked; the caller searched for by blind index."""
    return _intake_page(request, viewer, rt)


def _received(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationFailed("received_at: not a date and time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=TIMEZONE)
    if parsed > utcnow() + dt.timedelta(minutes=5):
        raise ValidationFailed("received_at: a request cannot be received in the future")
    if parsed.astimezone(dt.UTC).year < 2000:
        raise ValidationFailed("received_at: not a date and time")
    return parsed.astimezone(dt.UTC)


@router.post("/nouvelle", response_class=HTMLResponse)
def intake(
    request: Request,
    viewer: DeskForm,
    rt: CurrentRuntime,
    action: Annotated[str, Form(max_length=16)] = "",
    compte: Annotated[str, Form(max_length=SHORT)] = "",
    droit: Annotated[str, Form(max_length=SHORT)] = "",
    recu_par: Annotated[str, Form(max_length=SHORT)] = "",
    recu_le: Annotated[str, Form(max_length=SHORT)] = "",
    telephone: Annotated[str, Form(max_length=64)] = "",
    email: Annotated[str, Form(max_length=320)] = "",
    nom: Annotated[str, Form(max_length=200)] = "",
    appelant: Annotated[str, Form(max_length=SHORT)] = "",
    portee: Annotated[str, Form(max_length=SHORT)] = "",
    declaration: Annotated[str, Form(max_length=TEXT)] = "",
) -> Response:
    """``action=chercher`` looks the caller up (blind indexes; the matches' identities are an
    audited read); ``action=enregistrer`` takes the request in."""
    values = {
        "compte": compte,
        "droit": droit,
        "recu_par": recu_par,
        "recu_le": recu_le,
        "telephone": telephone,
        "email": email,
        "nom": nom,
        "appelant": appelant,
        "portee": portee,
        "declaration": declaration,
    }
    try:
        try:
            account_id = uuid.UUID(compte)
        except ValueError:
            raise ValidationFailed("account: choose the client account") from None
        if action == "chercher":
            with unit_of_work(rt, viewer.principal, account_id, "dpo:rights_search") as s:
                found = subjects.find(
                    s, rt.keyring, phone=telephone or None, email=email or None, name=nom or None
                )
                matches = [(c.id, subjects.identity(s, rt.keyring, c)) for c in found]
            return _intake_page(
                request, viewer, rt, values=values, matches=matches[:MAX_MATCHES], searched=True
            )
        problems = []
        if droit not in {k.value for k in Kind}:
            problems.append("kind: choose the right exercised")
        if recu_par not in RECEIVED_VIA:
            problems.append("received_via: say how the request reached you")
        if problems:
            raise ValidationFailed("the request is not complete", problems)
        received = _received(recu_le)
        caller_id = None
        if appelant:
            try:
                caller_id = uuid.UUID(appelant)
            except ValueError:
                raise ValidationFailed("caller: not a caller of this account") from None
        requester = rights.Requester(phone=telephone or None, email=email or None, name=nom or None)
        with unit_of_work(rt, viewer.principal, account_id, "dpo:rights_intake") as s:
            req = rights.submit(
                s,
                rt.keyring,
                rights.Intake(
                    kind=Kind(droit),
                    requester=requester,
                    caller_id=caller_id,
                    scope=portee.strip() or None,
                    statement=declaration.strip() or None,
                    received_at=received,
                    received_via=recu_par,
                ),
            )
            rights.acknowledge(s, rt.keyring, _outbox(request, rt), req, requester.given())
            request_id = req.id
    except PermanenceError as exc:
        return _intake_page(
            request,
            viewer,
            rt,
            values=values,
            problems=_problems(request, exc),
            status_code=exc.status_code if exc.status_code >= 400 else 422,
        )
    return redirect(f"/dpo/droits/{account_id}/{request_id}?fait=recue")
