"""Art. 28 contracts clause by clause; sub-processor changes with an objection window."""

from __future__ import annotations

import datetime as dt

import pytest

from permanence.context import AccessContext, Role
from permanence.contracts import service as contracts
from permanence.db import utcnow
from permanence.errors import Conflict, ValidationFailed
from permanence.mail import SmtpMailer
from permanence.runtime import Runtime
from tests.conftest import SmtpSink
from tests.factories import ctx_for, make_account

ALL = {letter: f"art. {i}" for i, letter in enumerate("abcdefgh", start=2)}


def test_a_contract_is_signed_only_with_every_clause(rt: Runtime) -> None:
    account = make_account(rt)
    dpo = AccessContext(role=Role.DPO, reason="contract", account_id=account.id)
    start = utcnow() - dt.timedelta(days=1)
    with rt.db.session(dpo) as s:
        partial = contracts.record_contract(
            s,
            reference="DPA-1",
            clauses={k: v for k, v in ALL.items() if k != "g"},
            effective_from=start,
        )
        with pytest.raises(ValidationFailed) as exc:
            contracts.sign_contract(s, partial.id)
        assert exc.value.problems == [f"clause (g) missing: {contracts.CLAUSES['g']}"]
    with rt.db.session(dpo) as s:
        assert contracts.contract_in_force(s) is None
        full = contracts.record_contract(s, reference="DPA-2", clauses=ALL, effective_from=start)
        contracts.sign_contract(s, full.id)
        status = contracts.contract_status(s)
        assert status.in_force and status.contract is not None
        assert status.contract.version == 2 and status.contract.mandate_version == 1
        assert [c.section for c in status.clauses] == list(ALL.values())


@pytest.mark.gdpr("Art. 28(2)")
def test_a_new_subprocessor_is_announced_and_objections_close_with_the_window(
    rt: Runtime, smtp: SmtpSink
) -> None:
    account = make_account(rt)
    desk = AccessContext(role=Role.DPO, reason="subprocessors")
    now = utcnow()
    with rt.db.session(desk) as s:
        change = contracts.propose_subprocessor(
            s,
            code="sms-eu",
            name="SMS Europe SA",
            service="envoi de SMS",
            country="BE",
            mailer=SmtpMailer(rt.settings),
            portal_url="https://p.example",
            now=now,
        )
        assert change.effective_at == now + contracts.OBJECTION_WINDOW
        assert [sp.status for sp in contracts.registry(s)] == ["proposed"]
    assert "SMS Europe SA" in smtp.bodies()[0]
    with rt.db.session(ctx_for(account.id, role=Role.CLIENT)) as s:
        notice = contracts.object_to_change(
            s, change.id, "location", now=now + dt.timedelta(days=2)
        )
        assert notice.objection_reason == "location"
    with rt.db.session(desk) as s:
        assert contracts.apply_due_changes(s, now + dt.timedelta(days=29)) == []
        applied = contracts.apply_due_changes(s, now + dt.timedelta(days=31))
        assert [(a.subprocessor.code, a.objections) for a in applied] == [("sms-eu", 1)]
        assert [sp.status for sp in contracts.registry(s)] == ["active"]
    with pytest.raises(Conflict), rt.db.session(ctx_for(account.id, role=Role.CLIENT)) as s:
        contracts.object_to_change(s, change.id, "other", now=now + dt.timedelta(days=31))


def test_a_transfer_outside_the_eea_needs_a_safeguard(rt: Runtime) -> None:
    with (
        rt.db.session(AccessContext(role=Role.DPO, reason="subprocessors")) as s,
        pytest.raises(ValidationFailed, match="safeguard"),
    ):
        contracts.register_initial(
            s, code="us-mail", name="Mail Inc", service="e-mail", country="US"
        )
