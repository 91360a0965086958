"""The client portal: messages (read, acknowledge), the agenda (move, cancel), the call
history, the mandate (read; ask for a change), the export of the account's data, the breach
notices addressed to the client, its contract and the sub-processors (with the objection).

A client user only ever sees their own account: it comes from their session, never from the
URL, and an object of another account is a 404.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from permanence.accounts import service as accounts
from permanence.breaches import controller as breach_controller
from permanence.breaches import service as breaches
from permanence.calls import service as calls
from permanence.context import Role
from permanence.contracts import scc
from permanence.contracts import service as contracts
from permanence.errors import Conflict, PermissionDenied, ValidationFailed
from permanence.mandates.forms import form_for
from permanence.mandates.hours_words import opening_hours_view
from permanence.messages import agenda, export, inbox
from permanence.messages import service as messages
from permanence.staff import auth
from permanence.web.deps import CurrentRuntime, session_of, unit_of_work
from permanence.web.pages.render import (
    TIMEZONE,
    Viewer,
    language,
    reauth_redirect,
    redirect,
    render,
    roles,
)

router = APIRouter(prefix="/portail")
Client = Annotated[Viewer, roles(Role.CLIENT)]
ClientForm = Annotated[Viewer, roles(Role.CLIENT, form=True)]
PAGE_SIZE = 25


def _account(viewer: Viewer) -> uuid.UUID:
    assert viewer.principal.account_id is not None
    return viewer.principal.account_id


@router.get("", response_class=HTMLResponse)
def portal_home() -> Response:
    return redirect("/portail/messages")


@router.get("/messages", response_class=HTMLResponse)
def message_list(
    request: Request,
    viewer: Client,
    rt: CurrentRuntime,
    etat: Annotated[str | None, Query(pattern="^(new|acknowledged)$")] = None,
    urgent: Annotated[bool, Query()] = False,
    du: Annotated[dt.date | None, Query()] = None,
    au: Annotated[dt.date | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    acquittes: Annotated[int | None, Query(ge=0, le=inbox.MAX_BULK)] = None,
) -> Response:
    """One page of messages with who called and the first words: one audited read."""
    account_id = _account(viewer)
    filters = inbox.Filters(
        status=etat,
        urgent=urgent,
        since=dt.datetime.combine(du, dt.time(), TIMEZONE) if du else None,
        until=dt.datetime.combine(au + dt.timedelta(days=1), dt.time(), TIMEZONE) if au else None,
    )
    with unit_of_work(rt, viewer.principal, account_id, "portal:messages") as s:
        rows = inbox.page(
            s, rt.keyring, filters, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
        )
        _row, mandate = accounts.mandate_version(s, account_id)
    labels = {p.code: (p.label_fr, p.label_en or p.label_fr) for p in mandate.purposes}
    query = {"etat": etat, "urgent": "1" if urgent else None, "du": du, "au": au}
    kept = "&".join(f"{k}={v}" for k, v in query.items() if v)
    return render(
        request,
        "portal/messages.html",
        viewer,
        rows=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        page=page,
        etat=etat,
        urgent=urgent,
        du=du,
        au=au,
        kept=kept,
        acknowledged=acquittes,
        labels=labels,
    )


@router.post("/messages/acquitter")
def acknowledge_many(
    viewer: ClientForm,
    rt: CurrentRuntime,
    ids: Annotated[list[uuid.UUID], Form(max_length=inbox.MAX_BULK)] = [],  # noqa: B006
    retour: Annotated[str, Form(max_length=200, pattern=r"^[a-z0-9=&\-]*$")] = "",
) -> Response:
    """Acknowledge the ticked messages at once (the list's bulk action)."""
    with unit_of_work(rt, viewer.principal, _account(viewer), "portal:messages") as s:
        count = inbox.acknowledge_many(s, ids)
    back = "&".join(part for part in (retour, f"acquittes={count}") if part)
    return redirect(f"/portail/messages?{back}")


@router.get("/messages/{message_id}", response_class=HTMLResponse)
def message_page(
    request: Request, message_id: uuid.UUID, viewer: Client, rt: CurrentRuntime
) -> Response:
    """One message with its fields (an audited read)."""
    account_id = _account(viewer)
    with unit_of_work(rt, viewer.principal, account_id, f"message:{message_id}") as s:
        msg = messages.get_message(s, message_id)
        values = messages.read_message(s, rt.keyring, msg)
        _row, mandate = accounts.mandate_by_id(s, msg.mandate_id)
    purpose = mandate.purpose(msg.purpose)
    return render(
        request,
        "portal/message.html",
        viewer,
        msg=msg,
        purpose=purpose,
        fields=form_for(mandate, msg.purpose),
        values=values,
    )


@router.post("/messages/{message_id}/acquitter")
def acknowledge(message_id: uuid.UUID, viewer: ClientForm, rt: CurrentRuntime) -> Response:
    with unit_of_work(rt, viewer.principal, _account(viewer), f"message:{message_id}") as s:
        messages.acknowledge(s, message_id)
    return redirect(f"/portail/messages/{message_id}")


def _week_start(value: dt.date | None) -> dt.date:
    day = value or dt.datetime.now(TIMEZONE).date()
    return day - dt.timedelta(days=day.weekday())


@router.get("/agenda", response_class=HTMLResponse)
def agenda_page(
    request: Request,
    viewer: Client,
    rt: CurrentRuntime,
    semaine: dt.date | None = None,
) -> Response:
    """A week of appointments, Monday to Sunday (who, when; never why)."""
    monday = _week_start(semaine)
    start = dt.datetime.combine(monday, dt.time(), TIMEZONE)
    end = start + dt.timedelta(days=7)
    with unit_of_work(rt, viewer.principal, _account(viewer), "portal:agenda") as s:
        items = agenda.overview(s, rt.keyring, start, end)
    days: dict[dt.date, list[tuple[object, str]]] = {
        monday + dt.timedelta(days=i): [] for i in range(7)
    }
    for appt, who in items:
        days.setdefault(appt.starts_at.astimezone(TIMEZONE).date(), []).append((appt, who))
    return render(
        request,
        "portal/agenda.html",
        viewer,
        days=days,
        monday=monday,
        previous=monday - dt.timedelta(days=7),
        following=monday + dt.timedelta(days=7),
        problem=request.query_params.get("probleme"),
    )


@router.post("/rendez-vous/{appointment_id}/deplacer")
def move(
    appointment_id: uuid.UUID,
    viewer: ClientForm,
    rt: CurrentRuntime,
    debut: Annotated[str, Form(max_length=40)],
    semaine: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Move to a new start (local time), keeping the duration."""
    back = f"/portail/agenda?semaine={semaine}" if semaine else "/portail/agenda"
    try:
        starts = dt.datetime.fromisoformat(debut).replace(tzinfo=TIMEZONE)
    except ValueError:
        return redirect(back + ("&" if semaine else "?") + "probleme=date")
    try:
        with unit_of_work(
            rt, viewer.principal, _account(viewer), f"appointment:{appointment_id}"
        ) as s:
            appt = agenda.get(s, appointment_id)
            agenda.move(s, appointment_id, starts, starts + (appt.ends_at - appt.starts_at))
    except Conflict:
        return redirect(back + ("&" if semaine else "?") + "probleme=overlap")
    except ValidationFailed:
        return redirect(back + ("&" if semaine else "?") + "probleme=date")
    return redirect(f"/portail/agenda?semaine={starts.date().isoformat()}")


@router.get("/rendez-vous/{appointment_id}/annuler", response_class=HTMLResponse)
def cancel_page(
    request: Request,
    appointment_id: uuid.UUID,
    viewer: Client,
    rt: CurrentRuntime,
    semaine: Annotated[dt.date | None, Query()] = None,
) -> Response:
    """Asks before cancelling: when, and the two choices (cancel, keep it)."""
    with unit_of_work(
        rt, viewer.principal, _account(viewer), f"appointment:{appointment_id}", readonly=True
    ) as s:
        appt = agenda.get(s, appointment_id)
    return render(
        request,
        "portal/cancel.html",
        viewer,
        appt=appt,
        semaine=(semaine or _week_start(appt.starts_at.astimezone(TIMEZONE).date())).isoformat(),
    )


@router.post("/rendez-vous/{appointment_id}/annuler")
def cancel(
    appointment_id: uuid.UUID,
    viewer: ClientForm,
    rt: CurrentRuntime,
    semaine: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    with unit_of_work(rt, viewer.principal, _account(viewer), f"appointment:{appointment_id}") as s:
        agenda.cancel(s, appointment_id)
    return redirect(f"/portail/agenda?semaine={semaine}" if semaine else "/portail/agenda")


@router.get("/appels", response_class=HTMLResponse)
def call_history(
    request: Request,
    viewer: Client,
    rt: CurrentRuntime,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    with unit_of_work(rt, viewer.principal, _account(viewer), "portal:calls", readonly=True) as s:
        rows = calls.recent(s, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return render(
        request,
        "portal/calls.html",
        viewer,
        rows=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        page=page,
    )


@router.get("/mandat", response_class=HTMLResponse)
def mandate_page(request: Request, viewer: Client, rt: CurrentRuntime) -> Response:
    account_id = _account(viewer)
    with unit_of_work(rt, viewer.principal, account_id, "portal:mandate", readonly=True) as s:
        row, mandate = accounts.mandate_version(s, account_id)
    return render(
        request,
        "portal/mandate.html",
        viewer,
        row=row,
        mandate=mandate,
        hours_view=opening_hours_view(mandate, language(request)),
        forms={p.code: form_for(mandate, p.code) for p in mandate.purposes},
        topics=accounts.CHANGE_TOPICS,
        sent=request.query_params.get("demande"),
    )


@router.post("/mandat/demande")
def ask_change(
    viewer: ClientForm, rt: CurrentRuntime, sujet: Annotated[str, Form(max_length=32)]
) -> Response:
    """Ask the provider to change the mandate (recorded; the provider's staff take it up)."""
    with unit_of_work(rt, viewer.principal, _account(viewer), "portal:mandate_change") as s:
        accounts.request_mandate_change(s, sujet)
    return redirect("/portail/mandat?demande=ok")


@router.get("/export", response_class=HTMLResponse)
def export_page(request: Request, viewer: Client, rt: CurrentRuntime) -> Response:
    try:
        auth.require_recent_auth(session_of(rt, viewer.principal))
        confirmed = True
    except PermissionDenied:
        confirmed = False
    return render(request, "portal/export.html", viewer, confirmed=confirmed)


@router.get("/export.csv")
def export_csv(viewer: Client, rt: CurrentRuntime) -> Response:
    """The account's messages and appointments as CSV: only after re-authentication."""
    try:
        auth.require_recent_auth(session_of(rt, viewer.principal))
    except PermissionDenied:
        return reauth_redirect("/portail/export")
    with unit_of_work(rt, viewer.principal, _account(viewer), "portal:export") as s:
        body = export.account_csv(s, rt.keyring)
    stamp = dt.datetime.now(TIMEZONE).strftime("%Y%m%d-%H%M")
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="permanence-export-{stamp}.csv"'},
    )


@router.get("/violations", response_class=HTMLResponse)
def breach_notices(request: Request, viewer: Client, rt: CurrentRuntime) -> Response:
    """Personal data breaches we notified to this client (Art. 33(2)), newest first."""
    with unit_of_work(
        rt, viewer.principal, _account(viewer), "portal:breaches", readonly=True
    ) as s:
        notices = breaches.notices_for_account(s)
        references = breaches.notice_references(s, notices)
    return render(
        request,
        "portal/breaches.html",
        viewer,
        notices=notices,
        references=references,
        reference=None,
    )


BreachRef = Annotated[str, Path(pattern=r"^V-\d{4}-\d{3,6}$")]


def _breach_page(
    request: Request,
    viewer: Viewer,
    rt: CurrentRuntime,
    reference: str,
    *,
    problem: breaches.BreachRefused | breaches.BreachConflict | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    with unit_of_work(
        rt, viewer.principal, _account(viewer), "portal:breaches", readonly=True
    ) as s:
        found = breach_controller.notified_breach(s, reference)
        draft = breach_controller.subjects_draft(s, reference)
    return render(
        request,
        "portal/breach.html",
        viewer,
        status_code=status_code,
        found=found,
        b=found.breach,
        impact=found.impact,
        notices=found.notices,
        draft=draft,
        reasons=list(breaches.SUBJECTS_REASONS),
        problem=problem,
        values=values or {},
        done=request.query_params.get("fait", ""),
        now=dt.datetime.now(dt.UTC),
    )


@router.get("/violations/{reference}", response_class=HTMLResponse)
def breach_notices_of_one(
    request: Request, reference: BreachRef, viewer: Client, rt: CurrentRuntime
) -> Response:
    """One breach notified to this client (the link the notification e-mail carries): the
    notices, its own Art. 34 decision with the draft to its callers, and the link to the
    pre-filled CNIL notification; 404 when none was sent to this client."""
    return _breach_page(request, viewer, rt, reference)


@router.post("/violations/{reference}/personnes", response_class=HTMLResponse)
def breach_subjects_decision(
    request: Request,
    reference: BreachRef,
    viewer: ClientForm,
    rt: CurrentRuntime,
    decision: Annotated[str, Form(max_length=32)] = "",
    motif: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """Art. 34: the client's own decision on telling its callers (never the provider's)."""
    reason = (motif or None) if decision == "not_required" else None
    try:
        with unit_of_work(rt, viewer.principal, _account(viewer), f"breach:{reference}") as s:
            breach_controller.record_subjects_decision(s, reference, decision, reason)
    except (breaches.BreachRefused, breaches.BreachConflict) as exc:
        return _breach_page(
            request,
            viewer,
            rt,
            reference,
            problem=exc,
            values={"decision": decision, "motif": motif},
            status_code=409 if isinstance(exc, Conflict) else 422,
        )
    return redirect(f"/portail/violations/{reference}?fait=personnes#art34")


@router.get("/violations/{reference}/cnil", response_class=HTMLResponse)
def breach_cnil_form(
    request: Request, reference: BreachRef, viewer: Client, rt: CurrentRuntime
) -> Response:
    """The notification to the CNIL, pre-filled under the headings of its online form, for
    the client to file within its own 72 hours."""
    with unit_of_work(
        rt, viewer.principal, _account(viewer), "portal:breaches", readonly=True
    ) as s:
        found = breach_controller.notified_breach(s, reference)
        sections = breach_controller.cnil_form(s, rt.settings, reference)
    return render(
        request, "portal/breach_cnil.html", viewer, b=found.breach, found=found, sections=sections
    )


@router.get("/contrat", response_class=HTMLResponse)
def contract_page(request: Request, viewer: Client, rt: CurrentRuntime) -> Response:
    """The Art. 28 contract in force, the sub-processors, and the changes announced (each
    open to objection until it takes effect)."""
    with unit_of_work(
        rt, viewer.principal, _account(viewer), "portal:contract", readonly=True
    ) as s:
        status = contracts.contract_status(s)
        subprocessors = contracts.registry(s)
        changes = contracts.changes_for_account(s)
        documents = {v.id: scc.document_of(s, v.id) for v in status.versions}
    return render(
        request,
        "portal/contract.html",
        viewer,
        documents=documents,
        status=status,
        subprocessors=subprocessors,
        changes=changes,
        reasons=contracts.OBJECTION_REASONS,
        now=dt.datetime.now(dt.UTC),
        objected=request.query_params.get("objection"),
    )


@router.post("/contrat/changements/{change_id}/objection")
def object_to_change(
    change_id: uuid.UUID,
    viewer: ClientForm,
    rt: CurrentRuntime,
    motif: Annotated[str, Form(max_length=32)],
) -> Response:
    """Object to a new sub-processor (Art. 28(2)) before it takes effect."""
    with unit_of_work(rt, viewer.principal, _account(viewer), f"subprocessor:{change_id}") as s:
        contracts.object_to_change(s, change_id, motif)
    return redirect("/portail/contrat?objection=ok")
