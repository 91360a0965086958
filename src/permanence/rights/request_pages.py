"""The DPO's rights desk, one request: its page, more information, the code sent and checked,
identity verified another way, preview, execution, extension, refusal (the desk's shared
helpers are in ``rights.desk_pages``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from permanence.accounts import service as accounts
from permanence.db import utcnow
from permanence.errors import PermanenceError, ValidationFailed
from permanence.rights import clock, desk, texts
from permanence.rights import service as rights
from permanence.rights.api import _outbox
from permanence.rights.desk_pages import (
    CONFIRMED_METHODS,
    SHORT,
    TEXT,
    Desk,
    DeskForm,
    _problems,
    _t,
)
from permanence.rights.model import OPEN_STATES, Kind, RightsRequest, State
from permanence.subjects import service as subjects
from permanence.web.deps import CurrentRuntime, unit_of_work
from permanence.web.pages.render import Viewer, redirect, render

router = APIRouter(prefix="/dpo/droits")


def _letter(rt: CurrentRuntime, req: RightsRequest) -> str | None:
    """The letter sent to the requester for the decision on record (regenerated: the same
    function wrote it)."""
    if req.state == State.REFUSED.value and req.refusal_reason:
        refusal = rights.details_of(rt.keyring, req).get("refusal") or {}
        explanation = str(refusal.get("explanation") or "")
        if req.refusal_reason == "legal_hold" and not explanation:
            explanation = "Une obligation de conservation s'applique à ces données."
        return texts.refusal_letter(req.kind, req.refusal_reason, explanation.strip())
    if req.extended_at and req.extension_reason:
        due = clock.local_day(req.due_at).strftime("%d/%m/%Y")
        first = clock.local_day(req.first_due_at).strftime("%d/%m/%Y")
        return texts.extension_letter(req.kind, req.extension_reason, due, first)
    return None


def _detail(
    request: Request,
    viewer: Viewer,
    rt: CurrentRuntime,
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    *,
    problems: list[str] | None = None,
    form: str = "",
    values: dict[str, str] | None = None,
    preview: desk.Preview | None = None,
    phone_on_file: str | None = None,
    status_code: int = 200,
) -> Response:
    now = utcnow()
    with unit_of_work(rt, viewer.principal, account_id, "dpo:rights_request", readonly=True) as s:
        req = rights.get(s, request_id)
        events = desk.history(s, req)
        account = accounts.get_account(s, account_id)
        letter = _letter(rt, req)
        letters = rights.letters_of(s, rt.keyring, req)
    open_ = req.state in {st.value for st in OPEN_STATES}
    return render(
        request,
        "dpo/rights_request.html",
        viewer,
        status_code=status_code,
        rq=req,
        account=account,
        reference=desk.reference(req),
        is_open=open_,
        days_left=clock.days_left(req.due_at, now),
        overdue=open_ and now > req.due_at,
        can_extend=open_
        and clock.can_extend(req.received_at, req.first_due_at, req.extended_at is not None, now)
        is None,
        events=events,
        letter=letter,
        letters=letters,
        problems=problems or [],
        form=form,
        values=values or {},
        preview=preview,
        phone_on_file=phone_on_file,
        done=request.query_params.get("fait", ""),
        channel=request.query_params.get("canal", ""),
        extension_reasons=list(texts.EXTENSION_REASONS_FR),
        refusal_reasons=list(texts.REFUSAL_REASONS_FR),
        excessive=texts.EXCESSIVE_REASONS,
        base=f"/dpo/droits/{account_id}/{request_id}",
    )


@router.get("/{account_id}/{request_id}", response_class=HTMLResponse)
def request_page(
    request: Request,
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    viewer: Desk,
    rt: CurrentRuntime,
) -> Response:
    """One request: its clock, its full history, and the forms to work it while open."""
    return _detail(request, viewer, rt, account_id, request_id)


@dataclass(frozen=True)
class _One:
    """One request's page, as one route serves it: shown again (with the problems and what
    was typed when an action is refused) or left for the page with the outcome."""

    request: Request
    viewer: Viewer
    rt: CurrentRuntime
    account_id: uuid.UUID
    request_id: uuid.UUID

    def page(self, **shown: Any) -> Response:
        return _detail(
            self.request, self.viewer, self.rt, self.account_id, self.request_id, **shown
        )

    def refused(self, exc: PermanenceError, form: str, status_code: int, **shown: Any) -> Response:
        return self.page(
            problems=_problems(self.request, exc), form=form, status_code=status_code, **shown
        )

    def done(self, done: str, query: str = "") -> Response:
        base = f"/dpo/droits/{self.account_id}/{self.request_id}"
        return redirect(f"{base}?fait={done}{query}#resultat")

    def act(
        self,
        *,
        reason: str,
        form: str,
        done: str,
        action: Callable[[Session], dict[str, str] | None],
        values: dict[str, str] | None = None,
    ) -> Response:
        """One desk action in one transaction; a refusal rolls it back and shows the page
        again with what was typed. ``action(session)`` may return extra query parameters."""
        try:
            with unit_of_work(self.rt, self.viewer.principal, self.account_id, reason) as s:
                extra = action(s) or {}
        except PermanenceError as exc:
            return self.refused(exc, form, _refusal_status(exc), values=values)
        return self.done(done, "".join(f"&{k}={v}" for k, v in extra.items()))

    def show(
        self, *, reason: str, form: str, read: Callable[[Session], dict[str, Any]]
    ) -> Response:
        """An audited read shown on the page (``read(session)`` returns what to show); a
        refusal shows the page with the problem."""
        try:
            with unit_of_work(self.rt, self.viewer.principal, self.account_id, reason) as s:
                shown = read(s)
        except PermanenceError as exc:
            return self.refused(exc, form, exc.status_code)
        return self.page(**shown)


def _refusal_status(exc: PermanenceError) -> int:
    return exc.status_code if exc.status_code >= 400 else 422


@router.post("/{account_id}/{request_id}/informations", response_class=HTMLResponse)
def add_information(
    request: Request,
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    viewer: DeskForm,
    rt: CurrentRuntime,
    telephone: Annotated[str, Form(max_length=64)] = "",
    email: Annotated[str, Form(max_length=320)] = "",
    nom: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """More identifiers from the requester (several callers matched, or none): match again."""

    def action(s: Session) -> None:
        given = rights.Requester(phone=telephone or None, email=email or None, name=nom or None)
        if not given.given():
            raise ValidationFailed("give the requester's phone number, e-mail address or name")
        rights.add_information(s, rt.keyring, request_id, given)

    return _One(request, viewer, rt, account_id, request_id).act(
        reason="dpo:rights_information",
        form="informations",
        done="informations",
        action=action,
        values={"telephone": telephone, "email": email, "nom": nom},
    )


@router.post("/{account_id}/{request_id}/code", response_class=HTMLResponse)
def send_code(
    request: Request,
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    viewer: DeskForm,
    rt: CurrentRuntime,
    methode: Annotated[str, Form(max_length=SHORT)] = "",
) -> Response:
    """Send a one-time code to the e-mail or phone on file (never to one typed in)."""

    def action(s: Session) -> None:
        if methode not in ("email_code", "sms_code"):
            raise ValidationFailed("method: choose e-mail or SMS")
        rights.start_verification(s, rt.keyring, _outbox(request, rt), request_id, methode)

    return _One(request, viewer, rt, account_id, request_id).act(
        reason="dpo:rights_verify",
        form="code",
        done="code_envoye",
        action=action,
        values={"methode": methode},
    )


@router.post("/{account_id}/{request_id}/verifier", response_class=HTMLResponse)
def check_code(
    request: Request,
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    viewer: DeskForm,
    rt: CurrentRuntime,
    code: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """The code the requester read out (a wrong one is counted, then refused)."""
    try:
        with unit_of_work(rt, viewer.principal, account_id, "dpo:rights_verify") as s:
            ok = rights.verify(s, rt.keyring, request_id, code=code)
    except PermanenceError as exc:
        ok, problems, status = False, _problems(request, exc), exc.status_code
    else:
        problems, status = [_t(request, "the code is not the one sent")], 422
    one = _One(request, viewer, rt, account_id, request_id)
    if not ok:
        return one.page(problems=problems, form="verifier", status_code=status)
    return one.done("verifiee")


@router.post("/{account_id}/{request_id}/numero", response_class=HTMLResponse)
def phone_for_callback(
    request: Request,
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    viewer: DeskForm,
    rt: CurrentRuntime,
) -> Response:
    """The number on file, to call the requester back (an audited read; shown once, never
    put in a URL)."""

    def read(s: Session) -> dict[str, Any]:
        caller = rights.subject_of(s, rights.get(s, request_id))
        if caller is None:
            raise ValidationFailed(
                "no data subject is linked to this request: there is nobody to verify"
            )
        ident = subjects.identity(s, rt.keyring, caller)
        return {"phone_on_file": ident.phone or _t(request, "no phone number on file")}

    one = _One(request, viewer, rt, account_id, request_id)
    return one.show(reason="dpo:rights_callback", form="autrement", read=read)


@router.post("/{account_id}/{request_id}/verification", response_class=HTMLResponse)
def verified_another_way(
    request: Request,
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    viewer: DeskForm,
    rt: CurrentRuntime,
    motif: Annotated[str, Form(max_length=SHORT)] = "",
    confirme: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Record a verification done another way: a call-back to the number on file, or an
    identity document seen; the reason code is kept (and audited)."""

    def action(s: Session) -> None:
        if motif not in CONFIRMED_METHODS:
            raise ValidationFailed("reason: say how the identity was verified")
        if confirme != "oui":
            raise ValidationFailed("confirm that the verification succeeded")
        rights.start_verification(s, rt.keyring, _outbox(request, rt), request_id, motif)
        rights.verify(s, rt.keyring, request_id, callback_confirmed=True)

    return _One(request, viewer, rt, account_id, request_id).act(
        reason="dpo:rights_verify",
        form="autrement",
        done="verifiee",
        action=action,
        values={"motif": motif},
    )


@router.post("/{account_id}/{request_id}/apercu", response_class=HTMLResponse)
def preview(
    request: Request,
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    viewer: DeskForm,
    rt: CurrentRuntime,
) -> Response:
    """What the execution would do: records found, Art. 19 recipients, legal holds (counts
    and recipients only; audited)."""

    def read(s: Session) -> dict[str, Any]:
        if rights.get(s, request_id).verified_at is None:
            raise ValidationFailed("verify the requester's identity before answering the request")
        return {"preview": desk.preview(s, request_id)}

    one = _One(request, viewer, rt, account_id, request_id)
    return one.show(reason="dpo:rights_preview", form="executer", read=read)


@router.post("/{account_id}/{request_id}/executer", response_class=HTMLResponse)
def execute(
    request: Request,
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    viewer: DeskForm,
    rt: CurrentRuntime,
    confirme: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Carry the request out (an erasure needs the explicit confirmation); files it frees are
    deleted after the commit."""
    kind = ""
    try:
        reason = "dpo:rights_execute"
        with unit_of_work(rt, viewer.principal, account_id, reason, readonly=True) as s:
            req = rights.get(s, request_id)
            kind = req.kind
        if kind == Kind.ERASURE.value and confirme != "oui":
            raise ValidationFailed("confirm the erasure: it cannot be undone")
        ctx = viewer.principal.context("dpo:rights_execute", account_id)
        done = rights.run_execute(rt, _outbox(request, rt), ctx, request_id)
    except PermanenceError as exc:
        seen = None
        if kind == Kind.ERASURE.value:  # the preview again, with the confirmation asked for
            try:
                with unit_of_work(rt, viewer.principal, account_id, "dpo:rights_preview") as s:
                    seen = desk.preview(s, request_id)
            except PermanenceError:
                seen = None  # not verified: the page says so
        one = _One(request, viewer, rt, account_id, request_id)
        return one.refused(exc, "executer", _refusal_status(exc), preview=seen)
    return _One(request, viewer, rt, account_id, request_id).done(
        "executee", f"&canal={done.channel}"
    )


@router.post("/{account_id}/{request_id}/prolonger", response_class=HTMLResponse)
def extend(
    request: Request,
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    viewer: DeskForm,
    rt: CurrentRuntime,
    motif: Annotated[str, Form(max_length=SHORT)] = "",
) -> Response:
    """Two further months, once, before the first due date; the letter goes to the requester."""

    def action(s: Session) -> dict[str, str]:
        if motif not in texts.EXTENSION_REASONS_FR:
            raise ValidationFailed("reason: choose why more time is needed")
        _req, _letter, channel = rights.extend(
            s, rt.keyring, _outbox(request, rt), request_id, motif
        )
        return {"canal": channel}

    return _One(request, viewer, rt, account_id, request_id).act(
        reason="dpo:rights_extend",
        form="prolonger",
        done="prolongee",
        action=action,
        values={"motif": motif},
    )


@router.post("/{account_id}/{request_id}/refuser", response_class=HTMLResponse)
def refuse(
    request: Request,
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    viewer: DeskForm,
    rt: CurrentRuntime,
    motif: Annotated[str, Form(max_length=SHORT)] = "",
    explication: Annotated[str, Form(max_length=TEXT)] = "",
    justification: Annotated[str, Form(max_length=TEXT)] = "",
    cnil: Annotated[str, Form(max_length=8)] = "",
    recours: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Refuse, with the reason, the explanation and (unfounded or excessive) the written
    justification; the letter names the CNIL and the courts."""

    def action(s: Session) -> dict[str, str]:
        if motif not in texts.REFUSAL_REASONS_FR:
            raise ValidationFailed("reason: choose the reason for the refusal")
        _req, _letter, channel = rights.refuse(
            s,
            rt.keyring,
            _outbox(request, rt),
            request_id,
            rights.Refusal(
                reason=motif,
                explanation=explication,
                cnil_complaint_informed=cnil == "oui",
                judicial_remedy_informed=recours == "oui",
                justification=justification.strip() or None,
            ),
        )
        return {"canal": channel}

    return _One(request, viewer, rt, account_id, request_id).act(
        reason="dpo:rights_refuse",
        form="refuser",
        done="refusee",
        action=action,
        values={
            "motif": motif,
            "explication": explication,
            "justification": justification,
            "cnil": cnil,
            "recours": recours,
        },
    )
