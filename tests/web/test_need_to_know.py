"""Need-to-know for health data (Art. 32, 25(2), 9(3); CSP L.1110-4), through the API an
operator uses: on a medical account with assigned operators, an unassigned operator opens
nothing; an assigned one opens a medical message during a call with that caller or after a
break-glass reason; the DPO exports the account's access list."""

from __future__ import annotations

import csv
import io

import pytest

from permanence.calls import service as calls
from permanence.compliance import checks
from permanence.context import AccessContext, Role
from permanence.messages import service as messages
from permanence.needtoknow import service as needtoknow
from tests.web.conftest import World, make_person


def _check(world: World) -> checks.CheckResult:
    return next(r for r in checks.run_checks(world.rt) if r.code == "access.need_to_know")


@pytest.mark.gdpr("Art. 32", "CSP L.1110-4")
def test_art32_need_to_know_an_operator_opens_medical_messages_only_when_assigned_and_in_call(
    world: World,
) -> None:
    rt = world.rt
    medical = world.medical.id
    op_ctx = AccessContext(
        role=Role.OPERATOR, reason="call:test", actor_id=world.operator.id, account_id=medical
    )
    with rt.db.session(op_ctx) as s:
        opened = calls.open_call(s, rt.keyring, dialled="+33478000001", caller_number="0199001234")
        calls.answer(s, opened.call)
        msg = messages.take_message(
            s,
            rt.keyring,
            caller_id=opened.caller.id,
            purpose="message",
            values={"last_name": "Martin", "phone": "0199001234", "note": "Douleurs"},
            call_id=opened.call.id,
        )
        call_id, caller_id, msg_id = opened.call.id, opened.caller.id, msg.id
    url = f"/api/v1/accounts/{medical}/messages/{msg_id}"
    # No assignment yet: the rule is off for the account and the check says so.
    assert _check(world).evidence == [
        "cabinet-lefevre: health data, but no operator assigned (any operator may open it)"
    ]
    desk = AccessContext(role=Role.DPO, reason="assign", account_id=medical)
    with rt.db.session(desk) as s:
        needtoknow.assign(s, world.operator.id)
    assert _check(world).passed

    other = make_person(rt, Role.OPERATOR, "autre@permanence.example")
    r = world.login(other).get(url)
    assert r.status_code == 403 and "not assigned" in r.json()["message"]
    assert world.login(other).get(f"/api/v1/accounts/{medical}/messages").status_code == 403

    operator = world.login(world.operator)
    r = operator.get(url)  # during the call with this caller
    assert r.status_code == 200, r.text
    assert r.json()["fields"]["note"] == "Douleurs"
    with rt.db.session(op_ctx) as s:
        calls.complete(s, calls.get_call(s, call_id))
    r = operator.get(url)  # the call is over
    assert r.status_code == 403 and "break-glass" in r.json()["message"]
    glass = f"/api/v1/accounts/{medical}/callers/{caller_id}/break-glass"
    assert operator.post(glass, json={"reason": "court"}).status_code == 422
    r = operator.post(glass, json={"reason": "Le médecin demande le message par téléphone"})
    assert r.status_code == 201, r.text
    assert operator.get(url).status_code == 200
    # The plumber's account holds no health data: nothing changes there.
    assert operator.get(f"/api/v1/accounts/{world.plumber.id}/messages").status_code == 200

    with rt.db.session(desk, readonly=True) as s:
        rows = list(csv.DictReader(io.StringIO(needtoknow.access_csv(needtoknow.access_list(s)))))
    assigned = [r for r in rows if r["basis"] == "assigned"]
    assert [(r["email"], r["break_glass_accesses"]) for r in assigned] == [
        ("op@permanence.example", "1")
    ]
    assert {r["role"] for r in rows if r["basis"] == "role"} == {"supervisor", "dpo", "admin"}
