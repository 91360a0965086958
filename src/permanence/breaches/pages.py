"""The breach desk: the register with its clocks, and working a breach from the DPO pages —
open it at the moment of awareness, describe it (Art. 33(3)), scope it to a compromised staff
account's reads or name the clients by hand, decide, preview the notice each client receives,
notify the clients, close.

Every action is one call to `breaches.service` (the command line calls the same functions).
A refusal shows the page again, with what was typed and a message in the reader's language
built from the refusal's key (`BreachRefused`, `BreachConflict`); the transaction is rolled
back, so nothing is half-written. URLs carry the breach's reference and account ids only.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from permanence.accounts import service as accounts
from permanence.breaches import service as breaches
from permanence.breaches.model import Breach
from permanence.context import Role
from permanence.db import utcnow
from permanence.errors import Conflict
from permanence.mail import mailer_for
from permanence.web.deps import CurrentRuntime
from permanence.web.pages.render import TIMEZONE, Viewer, redirect, render, roles

router = APIRouter(prefix="/dpo/violations")
Desk = Annotated[Viewer, roles(Role.DPO, Role.ADMIN)]
DeskForm = Annotated[Viewer, roles(Role.DPO, Role.ADMIN, form=True)]
# A breach is named by its reference (V-2026-001) or its id.
Ref = Annotated[str, Path(pattern=r"^(V-\d{4}-\d{3,6}|[0-9a-fA-F-]{32,36})$")]
TEXT = 4000  # the longest free text a field of the register takes from a form
SHORT = 40  # dates, numbers, codes and ids
MAX_COUNT = 1_000_000_000  # people or records: beyond, a typo (and a database integer's range)


@dataclass(frozen=True)
class Problem:
    """What the page says about a refusal: the template turns the key into a sentence."""

    key: str
    field: str = ""
    types: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()


def _problem(exc: breaches.BreachRefused | breaches.BreachConflict) -> Problem:
    if isinstance(exc, breaches.BreachRefused):
        return Problem(exc.key, exc.field, tuple(exc.types), tuple(exc.fields))
    return Problem(exc.key)


def _status(exc: Exception) -> int:
    return 409 if isinstance(exc, Conflict) else 422


def _when(value: str, name: str, *, required: bool = False) -> dt.datetime | None:
    """A ``datetime-local`` field, read as Paris time."""
    value = value.strip()
    if not value:
        if required:
            raise breaches.BreachRefused("required", f"{name} is required", field=name)
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=TIMEZONE)
        # Year 1 in Paris is before year 1 in UTC: out of range, like any typo of the year.
        if not 1970 <= parsed.astimezone(dt.UTC).year <= 2999:
            raise ValueError(value)
    except (ValueError, OverflowError):
        raise breaches.BreachRefused("bad_date", f"{name} is not a date", field=name) from None
    return parsed


def _number(value: str, name: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise breaches.BreachRefused(
            "bad_number", f"{name} is not a whole number", field=name
        ) from None
    if number > MAX_COUNT:
        raise breaches.BreachRefused("too_large", f"{name} is too large", field=name)
    return number


def _find(s: Session, reference: str) -> Breach:
    try:
        breach_id = uuid.UUID(reference)
    except ValueError:
        return breaches.breach_by_reference(s, reference)
    return breaches.get_breach(s, breach_id)


# -- the register -----------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def breach_register(request: Request, viewer: Desk, rt: CurrentRuntime) -> Response:
    """The breach register (Art. 33(5)) with its clocks: 24 h to tell each controller (our
    target), 72 h for the controller to notify the CNIL (Art. 33(1))."""
    with rt.db.session(viewer.context("dpo:breaches"), readonly=True) as s:
        views = breaches.register(s)
    return render(request, "dpo/breaches.html", viewer, views=views, now=utcnow())


def _new_page(
    request: Request,
    viewer: Viewer,
    *,
    problems: list[Problem] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    now = utcnow()
    return render(
        request,
        "dpo/breach_new.html",
        viewer,
        status_code=status_code,
        problems=problems or [],
        bad={p.field for p in problems or []},
        values=values or {"aware_at": now.astimezone(TIMEZONE).strftime("%Y-%m-%dT%H:%M")},
        now=now,
    )


@router.get("/nouvelle", response_class=HTMLResponse)
def new_breach(request: Request, viewer: Desk) -> Response:
    """The form to open a breach: the moment of awareness (now, by default) and its nature."""
    return _new_page(request, viewer)


@router.post("/nouvelle", response_class=HTMLResponse)
def open_breach(
    request: Request,
    viewer: DeskForm,
    rt: CurrentRuntime,
    prise: Annotated[str, Form(max_length=SHORT)] = "",
    nature: Annotated[str, Form(max_length=TEXT)] = "",
) -> Response:
    """Open a breach: every clock starts at the moment of awareness."""
    try:
        aware = _when(prise, "aware_at", required=True)
        assert aware is not None
        with rt.db.session(viewer.context("dpo:breach_open")) as s:
            reference = breaches.open_breach(s, aware_at=aware, nature=nature).reference
    except (breaches.BreachRefused, breaches.BreachConflict) as exc:
        return _new_page(
            request,
            viewer,
            problems=[_problem(exc)],
            values={"aware_at": prise, "nature": nature},
            status_code=_status(exc),
        )
    return redirect(f"/dpo/violations/{reference}?fait=ouverte")


# -- one breach -------------------------------------------------------------------------------


def _detail(
    request: Request,
    viewer: Viewer,
    rt: CurrentRuntime,
    reference: str,
    *,
    problems: list[Problem] | None = None,
    form: str = "",
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    with rt.db.session(viewer.context("dpo:breach"), readonly=True) as s:
        breach = _find(s, reference)
        view = breaches.breach_view(s, breach.id)
        staff = breaches.staff_members(s)
        clients = [(a.id, a.name) for a in accounts.list_accounts(s)]
    notices = sorted(
        ((a, n) for a in view.accounts for n in a.sent), key=lambda pair: pair[1].sent_at
    )
    return render(
        request,
        "dpo/breach.html",
        viewer,
        status_code=status_code,
        v=view,
        b=view.breach,
        staff={m.id: m for m in staff},
        clients=clients,
        notices=notices,
        data_codes=list(breaches.DATA_CATEGORIES),
        subject_codes=list(breaches.SUBJECT_CATEGORIES),
        chosen_data=set(json.loads(view.breach.data_categories)),
        chosen_subjects=set(json.loads(view.breach.subject_categories)),
        missing=breaches.missing_fields(view.breach),
        not_notified_reasons=list(breaches.NOT_NOTIFIED_REASONS),
        problems=problems or [],
        bad={p.field for p in problems or []},
        form=form,
        values=values or {},
        done=request.query_params.get("fait", ""),
        counts={
            k: request.query_params.get(k, "") for k in ("personnes", "comptes", "avis", "champs")
        },
        now=view.now,
    )


@router.get("/{reference}", response_class=HTMLResponse)
def breach_page(request: Request, reference: Ref, viewer: Desk, rt: CurrentRuntime) -> Response:
    """One breach: its contents, what the notice still needs, clocks, clients concerned and the
    notices sent; the forms to work it while it is open."""
    return _detail(request, viewer, rt, reference)


def _done(reference: str, what: str, **counts: int) -> Response:
    extra = "".join(f"&{k}={v}" for k, v in counts.items())
    return redirect(f"/dpo/violations/{reference}?fait={what}{extra}#resultat")


Action = Callable[[Session, Breach], dict[str, int] | None]


def _act(
    request: Request,
    viewer: Viewer,
    rt: CurrentRuntime,
    reference: str,
    *,
    reason: str,
    form: str,
    done: str,
    action: Action,
    values: dict[str, Any] | None = None,
) -> Response:
    """One desk action: ``action`` runs in one transaction on the breach; its counts go into
    the redirect. A refusal rolls it back and shows the page again with what was typed."""
    try:
        with rt.db.session(viewer.context(reason)) as s:
            breach = _find(s, reference)
            counts = action(s, breach) or {}
            reference = breach.reference
    except (breaches.BreachRefused, breaches.BreachConflict) as exc:
        return _detail(
            request,
            viewer,
            rt,
            reference,
            problems=[_problem(exc)],
            form=form,
            values=values,
            status_code=_status(exc),
        )
    return _done(reference, done, **counts)


def _uuid(value: str, field: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise breaches.BreachRefused("required", f"choose {what}", field=field) from None


@router.post("/{reference}/contenu", response_class=HTMLResponse)
def describe(
    request: Request,
    reference: Ref,
    viewer: DeskForm,
    rt: CurrentRuntime,
    nature: Annotated[str, Form(max_length=TEXT)] = "",
    donnees: Annotated[list[str] | None, Form()] = None,
    personnes: Annotated[list[str] | None, Form()] = None,
    nb_personnes: Annotated[str, Form(max_length=SHORT)] = "",
    nb_enregistrements: Annotated[str, Form(max_length=SHORT)] = "",
    contact: Annotated[str, Form(max_length=TEXT)] = "",
    consequences: Annotated[str, Form(max_length=TEXT)] = "",
    mesures: Annotated[str, Form(max_length=TEXT)] = "",
    debut: Annotated[str, Form(max_length=SHORT)] = "",
    fin: Annotated[str, Form(max_length=SHORT)] = "",
    inintelligible: Annotated[str, Form(max_length=SHORT)] = "",
) -> Response:
    """The Art. 33(3) contents. After a notice, a change opens the next phase (Art. 33(4))."""

    def action(s: Session, breach: Breach) -> dict[str, int]:
        changed = breaches.update_contents(
            s,
            breach.id,
            nature=nature,
            data_categories=donnees or [],
            subject_categories=personnes or [],
            approx_subjects=_number(nb_personnes, "approx_subjects"),
            approx_records=_number(nb_enregistrements, "approx_records"),
            contact_point=contact,
            consequences=consequences,
            measures=mesures,
            occurred_from=_when(debut, "occurred_from"),
            occurred_to=_when(fin, "occurred_to"),
            unintelligible=inintelligible == "oui",
        )
        return {"champs": len(changed)}

    values: dict[str, Any] = {
        "nature": nature,
        "donnees": donnees or [],
        "personnes": personnes or [],
        "nb_personnes": nb_personnes,
        "nb_enregistrements": nb_enregistrements,
        "contact": contact,
        "consequences": consequences,
        "mesures": mesures,
        "debut": debut,
        "fin": fin,
        "inintelligible": inintelligible,
    }
    return _act(
        request,
        viewer,
        rt,
        reference,
        reason="dpo:breach_update",
        form="contenu",
        done="contenu",
        action=action,
        values=values,
    )


@router.post("/{reference}/perimetre", response_class=HTMLResponse)
def scope(
    request: Request,
    reference: Ref,
    viewer: DeskForm,
    rt: CurrentRuntime,
    compte_personnel: Annotated[str, Form(max_length=SHORT)] = "",
    du: Annotated[str, Form(max_length=SHORT)] = "",
    au: Annotated[str, Form(max_length=SHORT)] = "",
) -> Response:
    """Scope to "this staff account was compromised between these times": whose data it read,
    from the audit log."""

    def action(s: Session, breach: Breach) -> dict[str, int]:
        actor = _uuid(compte_personnel, "actor", "the staff account")
        start = _when(du, "start", required=True)
        end = _when(au, "end", required=True)
        assert start is not None and end is not None
        found = breaches.scope_to_actor(s, breach.id, actor_id=actor, start=start, end=end)
        return {"personnes": len(found.subjects), "comptes": len(found.accounts)}

    return _act(
        request,
        viewer,
        rt,
        reference,
        reason="dpo:breach_scope",
        form="perimetre",
        done="perimetre",
        action=action,
        values={"compte_personnel": compte_personnel, "du": du, "au": au},
    )


@router.post("/{reference}/comptes", response_class=HTMLResponse)
def add_client(
    request: Request,
    reference: Ref,
    viewer: DeskForm,
    rt: CurrentRuntime,
    compte: Annotated[str, Form(max_length=SHORT)] = "",
    nb_personnes: Annotated[str, Form(max_length=SHORT)] = "",
    nb_enregistrements: Annotated[str, Form(max_length=SHORT)] = "",
) -> Response:
    """Name a client concerned by hand (a breach the audit log cannot scope: a lost laptop's
    exported file, a misdirected e-mail…)."""

    def action(s: Session, breach: Breach) -> None:
        account_id = _uuid(compte, "account", "the client")
        subjects = _number(nb_personnes, "approx_subjects") or 0
        records = _number(nb_enregistrements, "approx_records") or 0
        breaches.add_account(s, breach.id, account_id, subjects=subjects, records=records)

    return _act(
        request,
        viewer,
        rt,
        reference,
        reason="dpo:breach_account",
        form="comptes",
        done="compte",
        action=action,
        values={
            "compte": compte,
            "nb_personnes": nb_personnes,
            "nb_enregistrements": nb_enregistrements,
        },
    )


@router.post("/{reference}/decision", response_class=HTMLResponse)
def decide(
    request: Request,
    reference: Ref,
    viewer: DeskForm,
    rt: CurrentRuntime,
    decision: Annotated[str, Form(max_length=SHORT)] = "",
    motif: Annotated[str, Form(max_length=SHORT)] = "",
) -> Response:
    """Document an incident that concerns no client's personal data, with the reason
    (Art. 33(5)); refused once a client is concerned (Art. 33(2))."""

    def action(s: Session, breach: Breach) -> None:
        reason = (motif or None) if decision == "not_notified" else None
        breaches.decide(s, breach.id, decision, reason)

    return _act(
        request,
        viewer,
        rt,
        reference,
        reason="dpo:breach_decide",
        form="decision",
        done="decision",
        action=action,
        values={"decision": decision, "motif": motif},
    )


@router.get("/{reference}/avis/{account_id}", response_class=HTMLResponse)
def notice_preview(
    request: Request, reference: Ref, account_id: uuid.UUID, viewer: Desk, rt: CurrentRuntime
) -> Response:
    """The notice this client would receive now (Art. 33(2)), and the communication to its
    callers (Art. 34), as drafts: nothing is sent from here."""
    with rt.db.session(viewer.context("dpo:breach_draft"), readonly=True) as s:
        breach = _find(s, reference)
        notice = breaches.controller_notice_draft(s, breach.id, account_id)
        callers = breaches.subjects_communication_draft(s, breach.id, account_id)
        name = accounts.get_account(s, account_id).name
        view = breaches.breach_view(s, breach.id)
    return render(
        request,
        "dpo/breach_notice.html",
        viewer,
        v=view,
        b=view.breach,
        client=name,
        notice=notice,
        callers=callers,
    )


@router.post("/{reference}/notifier", response_class=HTMLResponse)
def notify(request: Request, reference: Ref, viewer: DeskForm, rt: CurrentRuntime) -> Response:
    """Notify every client concerned of the current phase: the notice on its portal, an e-mail
    that only says one is waiting."""

    def action(s: Session, breach: Breach) -> dict[str, int]:
        mailer = mailer_for(rt.settings)
        sent = breaches.notify_controllers(
            s, breach.id, mailer=mailer, portal_url=rt.settings.public_base_url
        )
        return {"avis": len(sent)}

    return _act(
        request,
        viewer,
        rt,
        reference,
        reason="dpo:breach_notify",
        form="notifier",
        done="notifie",
        action=action,
    )


@router.post("/{reference}/cloture", response_class=HTMLResponse)
def close(request: Request, reference: Ref, viewer: DeskForm, rt: CurrentRuntime) -> Response:
    """Close the breach (it stays in the register)."""

    def action(s: Session, breach: Breach) -> None:
        breaches.close(s, breach.id)

    return _act(
        request,
        viewer,
        rt,
        reference,
        reason="dpo:breach_close",
        form="cloture",
        done="close",
        action=action,
    )
