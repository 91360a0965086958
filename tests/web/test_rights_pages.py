"""Rights requests in the pages: the client sees its own with the time left; the DPO desk
sees every account's open requests, overdue first; nobody else gets the pages."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import update

from permanence.context import AccessContext
from permanence.db import utcnow
from permanence.rights.model import RightsRequest
from tests.web.conftest import World
from tests.web.pages_helpers import page_login


def _request(world: World, account_id: object, kind: str) -> str:
    client = world.login(
        world.client_plumber if account_id == world.plumber.id else world.client_medical
    )
    r = client.post(
        f"/api/v1/accounts/{account_id}/rights/requests",
        json={"kind": kind, "requester": {"phone": "0199001234"}},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_client_sees_its_requests_with_the_time_left(world: World) -> None:
    _request(world, world.plumber.id, "access")
    _request(world, world.medical.id, "erasure")
    client, _ = page_login(world, world.client_plumber)
    page = client.get("/portail/droits")
    assert page.status_code == 200
    assert "Accès (art. 15)" in page.text and "Effacement" not in page.text  # not the other one
    assert " j</td>" in page.text  # days left
    assert "Demandes de droits" in page.text
    assert "0199001234" not in page.text


def test_dpo_desk_lists_every_account_overdue_first(world: World) -> None:
    late = _request(world, world.plumber.id, "access")
    _request(world, world.medical.id, "erasure")
    past = utcnow() - dt.timedelta(days=3)
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        s.execute(
            update(RightsRequest).where(RightsRequest.id == uuid.UUID(late)).values(due_at=past)
        )
    dpo, _ = page_login(world, world.dpo)
    page = dpo.get("/dpo/droits")
    assert page.status_code == 200
    text = page.text[page.text.index("<tbody>") :]  # the table, not the filters
    assert "Effacement (art. 17)" in text and "Accès (art. 15)" in text
    assert text.index("en retard de 3 j") < text.index("Effacement")
    assert 'class="overdue"' in text


def test_other_roles_do_not_get_the_pages(world: World) -> None:
    operator, _ = page_login(world, world.operator)
    assert operator.get("/dpo/droits").status_code == 403
    assert operator.get("/portail/droits").status_code == 403
    anonymous = world.client().get("/dpo/droits", follow_redirects=False)
    assert anonymous.status_code in (302, 303)
