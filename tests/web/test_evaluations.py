"""Call evaluation grids through the pages (issue 22): a supervisor scores an answered,
recorded call; the operator reads their own grids, supervisors and administrators all of
them, client users and the DPO none; refusals save nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from permanence.audit.model import AuditEntry
from permanence.calls.model import Call
from permanence.context import AccessContext, Role
from permanence.evaluations.model import Evaluation
from tests.web.conftest import World, make_person
from tests.web.pages_helpers import page_login
from tests.web.test_isolation_matrix import _stored_recording

GRID = {
    "greeting": "2",
    "identification": "1",
    "accuracy": "2",
    "courtesy": "2",
    "instructions": "0",
}
COMMENT = "Formule d'accueil du client oubliée ; consigne d'urgence non appliquée."


def _answered_recorded_call(
    world: World, op: TestClient | None = None, *, answered: bool = True
) -> str:
    """A call of the plumber answered by the operator, with its stored recording."""
    op = op or world.login(world.operator)
    call = op.post(
        "/api/v1/calls", json={"dialled": "+33240000001", "caller_number": "0199001234"}
    ).json()
    if answered:
        r = op.post(f"/api/v1/accounts/{world.plumber.id}/calls/{call['id']}/answer")
        assert r.status_code == 200, r.text
    ctx = AccessContext.system("test", world.plumber.id)
    with world.rt.db.session(ctx, readonly=True) as s:
        row = s.get(Call, uuid.UUID(call["id"]))
        assert row is not None and row.caller_id is not None
        caller_id = str(row.caller_id)
    _stored_recording(world, call["id"], caller_id)
    return str(call["id"])


def _grids(world: World) -> list[Evaluation]:
    ctx = AccessContext.system("test", world.plumber.id)
    with world.rt.db.session(ctx, readonly=True) as s:
        rows = list(s.scalars(select(Evaluation)))
        s.expunge_all()
        return rows


def _post(c: TestClient, csrf: str, path: str, **form: Any) -> Any:
    return c.post(path, data={**form, "csrf_token": csrf})


@pytest.mark.gdpr("Art. 25")
def test_a_supervisor_evaluates_a_recorded_call_and_only_staff_who_may_read_it_do(
    world: World,
) -> None:
    call_id = _answered_recorded_call(world)
    form = f"/evaluations/{world.plumber.id}/{call_id}"
    sup, csrf = page_login(world, world.supervisor)

    listed = sup.get("/evaluations")
    assert listed.status_code == 200, listed.text
    assert f'href="{form}"' in listed.text  # the call waits for its grid
    page = sup.get(form)
    assert page.status_code == 200, page.text
    assert "Accueil au nom du client" in page.text
    assert f"/api/v1/accounts/{world.plumber.id}/recordings/" in page.text  # to listen first

    saved = _post(sup, csrf, form, commentaire=COMMENT, **GRID)
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == "/evaluations?fait=1"
    [grid] = _grids(world)
    assert (grid.call_id, grid.operator_id, grid.evaluator_id) == (
        uuid.UUID(call_id),
        world.operator.id,
        world.supervisor.id,
    )
    assert [grid.greeting, grid.identification, grid.accuracy] == [2, 1, 2]
    assert [grid.courtesy, grid.instructions, grid.comment] == [2, 0, COMMENT]
    after = sup.get("/evaluations?fait=1").text
    assert "Évaluation enregistrée." in after
    assert f'data-evaluation="{grid.id}"' in after
    assert f'href="{form}"' not in after  # evaluated: no longer waiting

    # The audit entry says a grid was recorded, by whom, and nothing of its content.
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "evaluation.record")).one()
        assert entry.actor_id == world.supervisor.id and entry.subject_id is None
        assert str(grid.id) in entry.body
        assert "Formule" not in entry.body and "urgence" not in entry.body

    # The operator evaluated reads it (staff are informed); another operator does not.
    mine, _ = page_login(world, world.operator)
    own = mine.get("/evaluations")
    assert own.status_code == 200 and f'data-evaluation="{grid.id}"' in own.text
    assert COMMENT.replace("'", "&#39;") in own.text
    other = make_person(world.rt, Role.OPERATOR, "op2@permanence.example")
    theirs, _ = page_login(world, other)
    assert f'data-evaluation="{grid.id}"' not in theirs.get("/evaluations").text
    admin, _ = page_login(world, world.admin)
    assert f'data-evaluation="{grid.id}"' in admin.get("/evaluations").text

    # Client users (the controller) and the DPO have no page here: the provider's processing.
    for who in (world.client_plumber, world.dpo):
        c, _ = page_login(world, who)
        assert c.get("/evaluations").status_code == 403
        assert c.get(form).status_code == 403


@pytest.mark.gdpr("Art. 5(1)(c)")
def test_a_comment_quoting_the_callers_phone_number_is_refused_and_nothing_is_saved(
    world: World,
) -> None:
    call_id = _answered_recorded_call(world)
    form = f"/evaluations/{world.plumber.id}/{call_id}"
    sup, csrf = page_login(world, world.supervisor)
    refused = _post(sup, csrf, form, commentaire="Rappeler la cliente au 06 12 34 56 78", **GRID)
    assert refused.status_code == 422, refused.text
    assert "Le commentaire contient des données personnelles" in refused.text
    assert "06 12 34 56 78" in refused.text  # given back to correct, in the form only
    incomplete = _post(sup, csrf, form, commentaire="", **{**GRID, "courtesy": ""})
    assert incomplete.status_code == 422
    assert "Choisissez une note pour chaque critère." in incomplete.text
    out_of_scale = _post(sup, csrf, form, **{**GRID, "accuracy": "7"})
    assert out_of_scale.status_code == 422
    assert _grids(world) == []


@pytest.mark.gdpr("Art. 25")
def test_refusals_another_tenants_call_a_client_an_operator_an_unanswered_call(
    world: World,
) -> None:
    op = world.login(world.operator)
    call_id = _answered_recorded_call(world, op)
    ringing = _answered_recorded_call(world, op, answered=False)
    sup, csrf = page_login(world, world.supervisor)
    # The plumber's call named under the medical practice: the 404 of a missing call.
    elsewhere = f"/evaluations/{world.medical.id}/{call_id}"
    assert sup.get(elsewhere).status_code == 404
    assert _post(sup, csrf, elsewhere, **GRID).status_code == 404
    assert sup.get(f"/evaluations/{world.plumber.id}/{uuid.uuid4()}").status_code == 404
    form = f"/evaluations/{world.plumber.id}/{call_id}"
    for who in (world.client_plumber, world.operator):
        c, their_csrf = page_login(world, who)
        assert _post(c, their_csrf, form, **GRID).status_code == 403
    not_answered = _post(sup, csrf, f"/evaluations/{world.plumber.id}/{ringing}", **GRID)
    assert not_answered.status_code == 422
    assert _grids(world) == []
