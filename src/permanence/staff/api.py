"""Onboarding routes under /api/v1: recording training (the DPO and administrators), the
staff's training board, attestations (the DPO), and the confidentiality undertaking each
staff member reads and signs for themselves."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import Field

from permanence.context import STAFF_ROLES, Role
from permanence.errors import PayloadTooLarge, PermissionDenied, ValidationFailed
from permanence.staff import attestations, onboarding, training, undertaking
from permanence.staff.model import TrainingRecord
from permanence.web.deps import CurrentRuntime, Principal, require
from permanence.web.routes import ApiRoute
from permanence.web.schemas import ERRORS, Body

router = APIRouter(prefix="/api/v1", route_class=ApiRoute)

Recorder = Annotated[Principal, Depends(require(Role.DPO, Role.ADMIN))]
DPO = Annotated[Principal, Depends(require(Role.DPO))]
Staff = Annotated[Principal, Depends(require(*sorted(STAFF_ROLES, key=str)))]
# base64 of the largest attestation (padding included).
MAX_BASE64 = (attestations.MAX_ATTESTATION_BYTES + 2) // 3 * 4


class TrainingIn(Body):
    user_ids: list[uuid.UUID] = Field(min_length=1, max_length=onboarding.MAX_PEOPLE)
    course: str = Field(max_length=64, description="A module code from the catalogue")
    completed_on: dt.date = Field(description="The day the session took place (France)")
    trainer: str | None = Field(default=None, max_length=200)
    duration_minutes: int | None = Field(default=None, ge=1, le=onboarding.MAX_DURATION_MINUTES)
    attestation_base64: str | None = Field(
        default=None,
        description=(
            "The attestation (PDF, PNG or JPEG, 512 KiB at most), base64-encoded; "
            "a larger file is a 413"
        ),
    )


class UndertakingIn(Body):
    version: str = Field(max_length=32, description="The version that was read")


def _record(r: TrainingRecord) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "user_id": str(r.user_id),
        "course": r.course,
        "completed_at": r.completed_at.isoformat(),
        "expires_at": r.expires_at.isoformat(),
        "trainer": r.trainer,
        "duration_minutes": r.duration_minutes,
        "attestation_id": str(r.attestation_id) if r.attestation_id else None,
    }


@router.post("/staff/training", status_code=201, responses=ERRORS, tags=["staff"])
def record_training(body: TrainingIn, p: Recorder, rt: CurrentRuntime) -> list[dict[str, Any]]:
    """Record a training session for one or several staff members."""
    data = None
    if body.attestation_base64 is not None:
        if len(body.attestation_base64) > MAX_BASE64:
            raise PayloadTooLarge(
                f"the attestation file is larger than {attestations.MAX_ATTESTATION_BYTES // 1024}"
                " KiB"
            )
        try:
            data = base64.b64decode(body.attestation_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationFailed("attestation_base64 is not valid base64") from None
    with rt.db.session(p.context("api:training_record")) as s:
        rows = onboarding.record_session(
            s,
            rt.keyring,
            attestations.store_for(rt.settings),
            user_ids=body.user_ids,
            course=body.course,
            completed_on=body.completed_on,
            trainer=body.trainer,
            duration_minutes=body.duration_minutes,
            attestation=data,
        )
        return [_record(r) for r in rows]


@router.get("/staff/training", responses=ERRORS, tags=["staff"])
def training_board(p: Recorder, rt: CurrentRuntime) -> dict[str, Any]:
    """Every active staff member's training state and undertaking; the catalogue."""
    with rt.db.session(p.context("api:training"), readonly=True) as s:
        rows = onboarding.board(s)
        courses = training.courses(s)
        return {
            "undertaking_version": training.UNDERTAKING_VERSION,
            "courses": [
                {"code": c.code, "title_fr": c.title_fr, "validity_days": c.validity_days}
                for c in courses
            ],
            "staff": [
                {
                    "user_id": str(r.user_id),
                    "role": r.role,
                    "status": r.status,
                    "trained_until": r.trained_until.isoformat() if r.trained_until else None,
                    "undertaking_signed_at": (
                        r.undertaking.signed_at.isoformat() if r.undertaking else None
                    ),
                    "cleared": r.cleared,
                    "trainings": [_record(t) for t in r.trainings],
                }
                for r in rows
            ],
        }


@router.get("/staff/training/attestations/{attestation_id}", responses=ERRORS, tags=["staff"])
def attestation_file(attestation_id: uuid.UUID, p: DPO, rt: CurrentRuntime) -> StreamingResponse:
    with rt.db.session(p.context("api:training_attestation")) as s:
        opened = attestations.open_attestation(
            s, rt.keyring, attestations.store_for(rt.settings), attestation_id
        )
    return StreamingResponse(
        opened.chunks,
        media_type=opened.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{opened.filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/me/undertaking", responses=ERRORS, tags=["staff"])
def my_undertaking(p: Staff, rt: CurrentRuntime) -> dict[str, Any]:
    """The current confidentiality undertaking (French and English) and whether I signed it."""
    if p.user_id is None:
        raise PermissionDenied("the undertaking is signed by a person")
    with rt.db.session(p.context("api:undertaking"), readonly=True) as s:
        signed = training.undertaking_signed(s, p.user_id)
    return {
        "version": training.UNDERTAKING_VERSION,
        "signed": signed,
        "text_fr": list(undertaking.text("fr")),
        "text_en": list(undertaking.text("en")),
    }


@router.post("/me/undertaking", status_code=201, responses=ERRORS, tags=["staff"])
def sign_undertaking(body: UndertakingIn, p: Staff, rt: CurrentRuntime) -> dict[str, Any]:
    """Sign the version read (409 if the text has changed since)."""
    with rt.db.session(p.context("api:undertaking_sign")) as s:
        row = onboarding.sign_current(s, body.version)
        return {"version": row.version, "signed_at": row.signed_at.isoformat()}
