"""The DPO desk: the audit log (filter, verify the chain), the Art. 30 record and the
compliance checks. The staff's training and undertakings are in `pages/training.py`; the
breach register and the work on a breach in `pages/breaches.py`; rights requests in
`pages/rights.py`.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from permanence.audit import integrity
from permanence.audit import service as audit
from permanence.compliance import art30, checks, report
from permanence.context import Role
from permanence.db import utcnow
from permanence.web.deps import CurrentRuntime
from permanence.web.pages.render import TIMEZONE, Viewer, redirect, render, roles

router = APIRouter(prefix="/dpo")
AUDITORS = (Role.DPO, Role.ADMIN)
Auditor = Annotated[Viewer, roles(*AUDITORS)]
AuditorForm = Annotated[Viewer, roles(*AUDITORS, form=True)]
PAGE_SIZE = 50
CODE = r"^[A-Za-z0-9_.:/+\-]{1,64}$"


@router.get("", response_class=HTMLResponse)
def desk() -> Response:
    return redirect("/dpo/journal")


def _day(value: dt.date | None, *, end: bool = False) -> dt.datetime | None:
    if value is None:
        return None
    start = dt.datetime.combine(value, dt.time(), TIMEZONE)
    return start + dt.timedelta(days=1) if end else start


def _rows(entries: list[Any]) -> list[dict[str, Any]]:
    out = []
    for e in entries:
        body = json.loads(e.body)
        out.append(
            {
                "seq": e.seq,
                "ts": e.ts,
                "action": e.action,
                "actor": e.actor_id,
                "role": body.get("role"),
                "account": body.get("account"),
                "object": body.get("object"),
                "reason": body.get("reason"),
                "subject": e.subject_id,
                "details": body.get("details") or {},
            }
        )
    return out


def _journal(
    request: Request,
    viewer: Viewer,
    rt: CurrentRuntime,
    *,
    action: str | None,
    acteur: uuid.UUID | None,
    personne: uuid.UUID | None,
    du: dt.date | None,
    au: dt.date | None,
    avant: int | None,
    verified: integrity.VerifyResult | None = None,
) -> Response:
    with rt.db.session(viewer.context("dpo:audit_log"), readonly=True) as s:
        entries = audit.search(
            s,
            action=action,
            actor_id=acteur,
            subject_id=personne,
            since=_day(du),
            until=_day(au, end=True),
            before_seq=avant,
            limit=PAGE_SIZE,
        )
    rows = _rows(entries)
    return render(
        request,
        "dpo/audit.html",
        viewer,
        rows=rows,
        filters={"action": action, "acteur": acteur, "personne": personne, "du": du, "au": au},
        next_before=rows[-1]["seq"] if len(rows) == PAGE_SIZE else None,
        verified=verified,
    )


@router.get("/journal", response_class=HTMLResponse)
def journal(
    request: Request,
    viewer: Auditor,
    rt: CurrentRuntime,
    action: Annotated[str | None, Query(pattern=CODE)] = None,
    acteur: uuid.UUID | None = None,
    personne: uuid.UUID | None = None,
    du: dt.date | None = None,
    au: dt.date | None = None,
    avant: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """The audit log, newest first; filters on action (or a family, "message."), actor,
    data subject (pseudonymous ids) and dates."""
    return _journal(
        request,
        viewer,
        rt,
        action=action,
        acteur=acteur,
        personne=personne,
        du=du,
        au=au,
        avant=avant,
    )


@router.post("/journal/verifier", response_class=HTMLResponse)
def verify(request: Request, viewer: AuditorForm, rt: CurrentRuntime) -> Response:
    """Recompute the whole chain and check the signed checkpoints; show the result."""
    with rt.db.session(viewer.context("dpo:audit_verify"), readonly=True) as s:
        result = integrity.verify(s, rt.keyring.checkpoint_signing_key().public_key())
    return _journal(
        request,
        viewer,
        rt,
        action=None,
        acteur=None,
        personne=None,
        du=None,
        au=None,
        avant=None,
        verified=result,
    )


Desk = Annotated[Viewer, roles(Role.DPO, Role.ADMIN)]
DeskForm = Annotated[Viewer, roles(Role.DPO, Role.ADMIN, form=True)]


@router.get("/registre-art30", response_class=HTMLResponse)
def art30_record(request: Request, viewer: Desk, rt: CurrentRuntime) -> Response:
    """The records of processing (Art. 30(2) per client, 30(1) our own), from the mandates."""
    with rt.db.session(viewer.context("dpo:art30"), readonly=True) as s:
        processor = art30.processor_record(s, rt.settings)
        controller = art30.controller_record(s, rt.settings)
    return render(request, "dpo/art30.html", viewer, processor=processor, controller=controller)


@router.get("/registre-art30.{fmt}")
def art30_export(fmt: Literal["csv", "html"], viewer: Desk, rt: CurrentRuntime) -> Response:
    with rt.db.session(viewer.context("dpo:art30_export")) as s:
        body = art30.export(s, rt.settings, fmt)
    stamp = utcnow().strftime("%Y%m%d")
    media = "text/csv" if fmt == "csv" else "text/html"
    return Response(
        body,
        media_type=f"{media}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="registre-art30-{stamp}.{fmt}"'},
    )


@router.get("/conformite", response_class=HTMLResponse)
def compliance_page(request: Request, viewer: Desk) -> Response:
    """The compliance checks, to run on demand (they read every account: an action, like
    verifying the audit chain, not something to redo on each page view)."""
    return render(request, "dpo/compliance.html", viewer, checks=checks.registered(), results=None)


@router.post("/conformite", response_class=HTMLResponse)
def compliance_run(request: Request, viewer: DeskForm, rt: CurrentRuntime) -> Response:
    """Every compliance check, run now, with its evidence."""
    results = checks.run_checks(rt)
    return render(
        request,
        "dpo/compliance.html",
        viewer,
        checks=checks.registered(),
        results=results,
        failed=[r for r in results if not r.passed],
        at=utcnow(),
    )


@router.get("/conformite.html")
def compliance_report(viewer: Desk, rt: CurrentRuntime) -> Response:
    """The dated report, as a document to keep."""
    at = utcnow()
    body = report.report_html(
        checks.run_checks(rt, at), at=at, deployment=rt.settings.public_base_url
    )
    return Response(
        body,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="conformite-{at.strftime("%Y%m%d")}.html"'
        },
    )


@router.get("/dossier-de-preuves.zip")
def evidence_pack(viewer: Desk, rt: CurrentRuntime) -> Response:
    """The auditor's evidence pack (signed ZIP, no personal data): see compliance/evidence.py."""
    from permanence.compliance import evidence

    at = utcnow()
    pack = evidence.build(rt, viewer.context("dpo:evidence"), at)
    return Response(
        pack.data,
        media_type="application/zip",
        headers={
            "Content-Disposition": (
                f'attachment; filename="dossier-de-preuves-{at.strftime("%Y%m%d")}.zip"'
            ),
            "Cache-Control": "no-store",
        },
    )
