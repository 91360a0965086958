"""The client portal's voicemail tab (issue 15): an HTML5 audio player, "treated". The
console's voicemail page is a role surface (web/pages/voicemails.py: it shows the console's
queue beside the voicemails). The audio itself streams from the API route
``/api/v1/accounts/{id}/voicemails/{id}/audio`` (authorised and audited there)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from permanence.context import Role
from permanence.recordings import voicemails
from permanence.web.deps import CurrentRuntime, unit_of_work
from permanence.web.pages.render import Viewer, redirect, render, roles

router = APIRouter(include_in_schema=False)

Client = Annotated[Viewer, roles(Role.CLIENT)]
ClientForm = Annotated[Viewer, roles(Role.CLIENT, form=True)]


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
