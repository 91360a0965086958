"""Voicemail pages (issue 15): the console's new voicemails per account (operators hear them
with a reason and write them down as messages) and the client portal's voicemail tab (an
HTML5 audio player, "treated"). The audio itself streams from the API route
``/api/v1/accounts/{id}/voicemails/{id}/audio`` (authorised and audited there)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from permanence.accounts import service as accounts
from permanence.calls import service as calls
from permanence.context import Role
from permanence.db import acting_for
from permanence.recordings import voicemails
from permanence.runtime import Runtime
from permanence.web.deps import CurrentRuntime, unit_of_work
from permanence.web.pages.render import Viewer, redirect, render, roles

router = APIRouter(include_in_schema=False)

Operator = Annotated[Viewer, roles(Role.OPERATOR, Role.SUPERVISOR)]
OperatorForm = Annotated[Viewer, roles(Role.OPERATOR, Role.SUPERVISOR, form=True)]
Client = Annotated[Viewer, roles(Role.CLIENT)]
ClientForm = Annotated[Viewer, roles(Role.CLIENT, form=True)]
# Why an operator listens: kept in the audit entry of the listen.
REASONS = ("rappel", "prise-de-message")


def new_per_account(rt: Runtime, viewer: Viewer) -> list[tuple[uuid.UUID, str, int]]:
    """(account id, name, new voicemails) for each active account that has some."""
    out = []
    with rt.db.session(viewer.context("console:voicemails"), readonly=True) as s:
        for account in calls.each_active_account(s):
            with acting_for(s, account.id):
                n = voicemails.count_new(s)
            if n:
                out.append((account.id, account.name, n))
    return out


def queue_html(request: Request, viewer: Viewer, rt: Runtime) -> str:
    from permanence.web.pages.console import _queue, _queue_html

    return _queue_html(request, _queue(rt, viewer), viewer)


@router.get("/console/messagerie-vocale/{account_id}", response_class=HTMLResponse)
def console_voicemails(
    request: Request,
    account_id: uuid.UUID,
    viewer: Operator,
    rt: CurrentRuntime,
    ecouter: uuid.UUID | None = None,
    raison: Annotated[str | None, Query(pattern="^(rappel|prise-de-message)$")] = None,
) -> Response:
    """The account's new voicemails; ``ecouter`` + ``raison``: the player of one of them."""
    with unit_of_work(rt, viewer.principal, account_id, "console:voicemails") as s:
        account = accounts.get_account(s, account_id)
        items = voicemails.inbox(s, rt.keyring, state="new")
        _row, mandate = accounts.mandate_version(s, account_id)
    return render(
        request,
        "console/voicemails.html",
        viewer,
        account=account,
        items=items,
        purposes=[p for p in mandate.purposes if p.code != "appointment"],
        playing=ecouter if raison else None,
        reason=raison,
        reasons=REASONS,
        queue_html=queue_html(request, viewer, rt),  # the console's side column
    )


@router.post("/console/messagerie-vocale/{account_id}/{voicemail_id}/traiter")
def console_treat(
    account_id: uuid.UUID, voicemail_id: uuid.UUID, viewer: OperatorForm, rt: CurrentRuntime
) -> Response:
    with unit_of_work(rt, viewer.principal, account_id, f"voicemail:{voicemail_id}") as s:
        voicemails.treat(s, voicemail_id)
    return redirect(f"/console/messagerie-vocale/{account_id}")


@router.get("/portail/messagerie-vocale", response_class=HTMLResponse)
def portal_voicemails(
    request: Request,
    viewer: Client,
    rt: CurrentRuntime,
    etat: Annotated[str | None, Query(pattern="^(new|treated)$")] = None,
) -> Response:
    account_id = viewer.principal.account_id
    assert account_id is not None
    with unit_of_work(rt, viewer.principal, account_id, "portal:voicemails") as s:
        items = voicemails.inbox(s, rt.keyring, state=etat)
        new = voicemails.count_new(s)
    return render(request, "portal/voicemails.html", viewer, items=items, new=new, state=etat)


@router.post("/portail/messagerie-vocale/{voicemail_id}/traiter")
def portal_treat(
    voicemail_id: uuid.UUID,
    viewer: ClientForm,
    rt: CurrentRuntime,
    etat: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    account_id = viewer.principal.account_id
    assert account_id is not None
    with unit_of_work(rt, viewer.principal, account_id, f"voicemail:{voicemail_id}") as s:
        voicemails.treat(s, voicemail_id)
    return redirect("/portail/messagerie-vocale" + (f"?etat={etat}" if etat else ""))
