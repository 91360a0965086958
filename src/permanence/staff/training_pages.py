"""Onboarding staff: the DPO's training page (who is trained until when, who must renew,
recording a session with its attestation, renewing in one step, reading an attestation)
and the confidentiality undertaking each staff member signs (``/engagement``)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from permanence.context import STAFF_ROLES, Role
from permanence.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    PermanenceError,
    PermissionDenied,
    UnsupportedMediaType,
)
from permanence.staff import attestations, onboarding, training, undertaking
from permanence.web.deps import CurrentRuntime
from permanence.web.pages.render import (
    FormViewer,
    PageViewer,
    Viewer,
    home_of,
    language,
    redirect,
    render,
    roles,
    safe_next,
)

router = APIRouter()
TrainingViewer = Annotated[Viewer, roles(Role.DPO, Role.ADMIN, Role.SUPERVISOR)]
Recorder = Annotated[Viewer, roles(Role.DPO, Role.ADMIN, form=True)]
DPOViewer = Annotated[Viewer, roles(Role.DPO)]
SHORT = 40


def _problem(exc: PermanenceError) -> str:
    """The key the template turns into a sentence."""
    if isinstance(exc, onboarding.TrainingRefused):
        return exc.key
    if isinstance(exc, UnsupportedMediaType):
        return "file_type"
    if isinstance(exc, PayloadTooLarge):
        return "file_size"
    if isinstance(exc, NotFound):
        return "people"
    return "invalid"


def _page(
    request: Request,
    viewer: Viewer,
    rt: CurrentRuntime,
    *,
    status_code: int = 200,
    problems: list[str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    with rt.db.session(viewer.context("dpo:training"), readonly=True) as s:
        rows = onboarding.board(s)
        due = training.expiring(s, days=onboarding.SOON.days)
        courses = training.courses(s)
    names = {r.user_id: r.name for r in rows}
    return render(
        request,
        "dpo/training.html",
        viewer,
        status_code=status_code,
        staff=rows,
        due=[(d, names.get(d.user_id, "")) for d in due],
        courses=courses,
        catalogue={c.code: c for c in courses},
        course=training.REQUIRED_COURSE,
        undertaking=training.UNDERTAKING_VERSION,
        can_record=viewer.role in (Role.DPO, Role.ADMIN),
        can_read_files=viewer.role is Role.DPO,
        today=onboarding.paris_today().isoformat(),
        problems=problems or [],
        values=values or {},
        recorded=request.query_params.get("enregistre"),
    )


@router.get("/dpo/formation", response_class=HTMLResponse)
def training_page(request: Request, viewer: TrainingViewer, rt: CurrentRuntime) -> Response:
    return _page(request, viewer, rt)


def _day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise onboarding.TrainingRefused("date", "the completion date is not a date") from None


def _minutes(value: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 6:
        raise onboarding.TrainingRefused("duration", "the duration is not a number of minutes")
    return int(value)


@router.post("/dpo/formation", response_class=HTMLResponse)
async def record(
    request: Request,
    viewer: Recorder,
    rt: CurrentRuntime,
    module: Annotated[str, Form(max_length=64)],
    date: Annotated[str, Form(max_length=SHORT)],
    personnes: Annotated[list[str] | None, Form()] = None,  # ids; bounded by the body limit
    formateur: Annotated[str, Form(max_length=400)] = "",
    duree: Annotated[str, Form(max_length=SHORT)] = "",
    attestation: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Record a training session for the staff members ticked."""
    values = {"module": module, "date": date, "formateur": formateur, "duree": duree}
    try:
        data = None
        if attestation is not None and attestation.filename:
            data = await attestation.read(attestations.MAX_ATTESTATION_BYTES + 1)
        try:
            people = [uuid.UUID(p) for p in personnes or []]
        except ValueError:
            raise NotFound("no such staff member") from None
        with rt.db.session(viewer.context("dpo:training_record")) as s:
            done = onboarding.record_session(
                s,
                rt.keyring,
                attestations.store_for(rt.settings),
                user_ids=people,
                course=module,
                completed_on=_day(date),
                trainer=formateur,
                duration_minutes=_minutes(duree),
                attestation=data,
            )
            count = len(done)
    except (onboarding.TrainingRefused, NotFound, PayloadTooLarge, UnsupportedMediaType) as exc:
        return _page(
            request,
            viewer,
            rt,
            status_code=exc.status_code,
            problems=[_problem(exc)],
            values=values,
        )
    return redirect(f"/dpo/formation?enregistre={count}#recapitulatif")


@router.post("/dpo/formation/renouveler", response_class=HTMLResponse)
def renew(
    request: Request,
    viewer: Recorder,
    rt: CurrentRuntime,
    personne: Annotated[uuid.UUID, Form()],
    module: Annotated[str, Form(max_length=64)],
    date: Annotated[str, Form(max_length=SHORT)] = "",
) -> Response:
    """One step: the staff member completed the module again (today unless told)."""
    try:
        with rt.db.session(viewer.context("dpo:training_renew")) as s:
            onboarding.record_session(
                s,
                rt.keyring,
                attestations.store_for(rt.settings),
                user_ids=[personne],
                course=module,
                completed_on=_day(date) if date.strip() else onboarding.paris_today(),
            )
    except (onboarding.TrainingRefused, NotFound) as exc:
        return _page(request, viewer, rt, status_code=exc.status_code, problems=[_problem(exc)])
    return redirect("/dpo/formation?enregistre=1#recapitulatif")


@router.get("/dpo/formation/attestations/{attestation_id}")
def attestation_file(attestation_id: uuid.UUID, viewer: DPOViewer, rt: CurrentRuntime) -> Response:
    with rt.db.session(viewer.context("dpo:training_attestation")) as s:
        opened = attestations.open_attestation(
            s, rt.keyring, attestations.store_for(rt.settings), attestation_id
        )
    return StreamingResponse(
        opened.chunks,
        media_type=opened.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{opened.filename}"',
            "Content-Length": str(opened.size_bytes),
            "Cache-Control": "no-store",
        },
    )


# -- the confidentiality undertaking -------------------------------------------------------


def _staff(viewer: Viewer) -> None:
    if viewer.role not in STAFF_ROLES:
        raise PermissionDenied("the confidentiality undertaking is signed by staff members")


@router.get("/engagement", response_class=HTMLResponse)
def undertaking_page(request: Request, viewer: PageViewer, rt: CurrentRuntime) -> Response:
    """The current undertaking, to read and sign (or the date it was signed)."""
    _staff(viewer)
    with rt.db.session(viewer.context("staff:undertaking"), readonly=True) as s:
        signed = training.undertaking_signed(s, viewer.user_id)
    return render(
        request,
        "undertaking.html",
        viewer,
        paragraphs=undertaking.text(language(request)),
        version=training.UNDERTAKING_VERSION,
        signed=signed,
        suite=safe_next(request.query_params.get("suite"), home_of(viewer.role)),
        problem=None,
    )


@router.post("/engagement", response_class=HTMLResponse)
def sign(
    request: Request,
    viewer: FormViewer,
    rt: CurrentRuntime,
    version: Annotated[str, Form(max_length=SHORT)],
    lu: Annotated[str, Form(max_length=SHORT)] = "",
    suite: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    _staff(viewer)
    target = safe_next(suite, home_of(viewer.role))
    problem = None if lu == "oui" else "unread"
    if problem is None:
        try:
            with rt.db.session(viewer.context("staff:undertaking_sign")) as s:
                onboarding.sign_current(s, version)
        except Conflict:
            problem = "changed"
    if problem is not None:
        return render(
            request,
            "undertaking.html",
            viewer,
            status_code=409 if problem == "changed" else 422,
            paragraphs=undertaking.text(language(request)),
            version=training.UNDERTAKING_VERSION,
            signed=False,
            suite=target,
            problem=problem,
        )
    return redirect(target)
