"""Compliance checks: each passes or fails with evidence; the command exits non-zero on failure."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

from permanence.compliance import checks
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.db import utcnow
from permanence.mail import SmtpMailer
from permanence.messages.model import Message
from permanence.runtime import Runtime
from permanence.staff import training
from permanence.staff.model import TrainingRecord, User
from tests.conftest import PG_URL, SmtpSink, cli_env, run_cli
from tests.factories import OPERATOR_ID, ctx_for, make_account, make_caller

PERMANENCE = [sys.executable, "-m", "permanence"]


def _result(rt: Runtime, code: str, now: dt.datetime | None = None) -> checks.CheckResult:
    return next(r for r in checks.run_checks(rt, now) if r.code == code)


def test_expired_training_fails_with_the_staff_member_named_by_id(rt: Runtime) -> None:
    make_account(rt)
    assert _result(rt, "staff.training").passed
    with rt.db.session(AccessContext.system("test")) as s:
        s.execute(
            update(TrainingRecord)
            .where(TrainingRecord.user_id == OPERATOR_ID)
            .values(expires_at=utcnow() - dt.timedelta(days=1))
        )
    result = _result(rt, "staff.training")
    assert not result.passed
    assert result.evidence == [
        f"user {OPERATOR_ID} (operator): your data-protection training has expired or was "
        "never recorded"
    ]


@pytest.mark.gdpr("CSP L.1111-8")
def test_health_account_without_hds_hosting_fails(rt: Runtime) -> None:
    make_account(rt)
    rt.settings.hds_hosting = False
    assert "cabinet-lefevre" in _result(rt, "hosting.hds").evidence[0]
    rt.settings.hds_hosting = True
    assert _result(rt, "hosting.hds").passed


def test_account_without_signed_contract_fails(rt: Runtime) -> None:
    make_account(rt, "plomberie-durand")
    result = _result(rt, "contracts.signed")
    assert not result.passed
    assert result.evidence == ["plomberie-durand: no signed contract in force"]


def test_message_past_its_retention_fails(rt: Runtime) -> None:
    account = make_account(rt, "plomberie-durand")
    caller = make_caller(rt, account.id)
    from permanence.messages import service as messages

    with rt.db.session(ctx_for(account.id)) as s:
        msg = messages.take_message(
            s,
            rt.keyring,
            caller_id=caller,
            purpose="intervention",
            values={
                "last_name": "Martin",
                "phone": "0199001234",
                "address": "3 rue Haute, 44000 Nantes",
                "urgency": "à planifier",
                "description": "Robinet qui goutte",
            },
        )
        msg_id = msg.id
    assert _result(rt, "retention.records").passed
    with rt.db.session(ctx_for(account.id)) as s:
        s.execute(
            update(Message)
            .where(Message.id == msg_id)
            .values(created_at=utcnow() - dt.timedelta(days=200))
        )
    result = _result(rt, "retention.records")
    assert not result.passed
    assert result.evidence == ["plomberie-durand: 1 messages"]


def test_a_check_can_be_registered_by_another_module(rt: Runtime) -> None:
    @checks.check("test.extra", "A check from elsewhere")
    def _extra(run: checks.CheckRun) -> tuple[bool, str, list[str]]:
        return False, "always fails", ["evidence"]

    try:
        result = _result(rt, "test.extra")
        assert (result.passed, result.line()) == (False, "FAIL test.extra: always fails")
    finally:
        checks._REGISTRY.pop("test.extra")


def test_reminders_are_sent_once_before_expiry(rt: Runtime, smtp: SmtpSink) -> None:
    make_account(rt)
    with rt.db.session(AccessContext.system("test")) as s:
        s.execute(
            update(TrainingRecord)
            .where(TrainingRecord.user_id == OPERATOR_ID)
            .values(expires_at=utcnow() + dt.timedelta(days=10))
        )
    with rt.db.session(AccessContext(role=Role.DPO, reason="reminders")) as s:
        assert [r.user_id for r in training.expiring(s, days=5)] == []
        sent = training.send_reminders(s, SmtpMailer(rt.settings), days=30)
        assert [r.user_id for r in sent] == [OPERATOR_ID]
        assert training.send_reminders(s, SmtpMailer(rt.settings), days=30) == []
        email = s.get(User, OPERATOR_ID).email  # type: ignore[union-attr]
    assert [to for _frm, to, _raw in smtp.messages] == [[email]]
    assert "expire le" in smtp.bodies()[0]


def test_a_required_course_in_the_catalogue_gates_access(rt: Runtime) -> None:
    make_account(rt)
    with rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        training.add_course(s, code="secret-medical", title_fr="Secret médical", required=True)
        assert [c.code for c in training.courses(s)] == ["rgpd-fondamentaux", "secret-medical"]
        assert training.missing(s, OPERATOR_ID) == [
            "your training 'secret-medical' has expired or was never recorded"
        ]
        training.record_training(s, OPERATOR_ID, course="secret-medical")
        assert training.missing(s, OPERATOR_ID) == []


@pytest.fixture
def demo_env(settings: Settings) -> dict[str, str]:
    env = cli_env(settings)
    if not PG_URL:
        (settings.data_dir / "permanence.db").unlink()
    del env["PERMANENCE_MASTER_KEY"]
    proc = run_cli(
        env,
        "init",
        "--admin-email",
        "admin@permanence.example",
        "--admin-password",
        "un mot de passe solide",
    )
    assert proc.returncode == 0, proc.stderr
    assert run_cli(env, "demo").returncode == 0
    env["PERMANENCE_HDS_HOSTING"] = "true"
    return env


def _expire_the_operators_training(rt: Runtime) -> dict[str, str]:
    with rt.db.session(AccessContext.system("test")) as s:
        operator = s.query(User).filter_by(email="operateur@permanence.example").one()
        s.execute(
            update(TrainingRecord)
            .where(
                TrainingRecord.user_id == operator.id,
                TrainingRecord.course == training.REQUIRED_COURSE,
            )
            .values(expires_at=utcnow() - dt.timedelta(hours=1))
        )
        return {"operator": str(operator.id)}


def _add_a_client_to_the_closed_breach_without_a_notice(rt: Runtime) -> dict[str, str]:
    """What the service refuses, done behind its back."""
    from permanence.accounts.model import Account
    from permanence.breaches.model import Breach, BreachAccount
    from permanence.db import acting_for

    with rt.db.session(AccessContext.system("test")) as s:
        breach = s.query(Breach).one()
        assert breach.status == "closed"
        medical = s.query(Account).filter_by(slug="cabinet-lefevre").one()
        with acting_for(s, medical.id):
            s.add(BreachAccount(breach_id=breach.id, account_id=medical.id, subjects=4))
        return {"breach": breach.reference}


def _sign_a_placeholder_contract(rt: Runtime) -> dict[str, str]:
    """A later version recorded as section references and signed (the placeholder the product
    used to ship) replaces the generated contract in force."""
    from permanence.accounts.model import Account
    from permanence.contracts import service as contracts

    with rt.db.session(AccessContext.system("test")) as s:
        medical = s.query(Account).filter_by(slug="cabinet-lefevre").one().id
    with rt.db.session(AccessContext(role=Role.DPO, reason="t", account_id=medical)) as s:
        placeholder = contracts.record_contract(
            s,
            reference="DPA-placeholder",
            clauses={k: f"art. {i}" for i, k in enumerate(contracts.CLAUSES, start=2)},
            effective_from=utcnow() - dt.timedelta(hours=1),
        )
        contracts.sign_contract(s, placeholder.id)
    return {}


def _delete_the_medical_accounts_dpia(rt: Runtime) -> dict[str, str]:
    from sqlalchemy import delete

    from permanence.accounts.model import Account
    from permanence.db import acting_for
    from permanence.dpia.model import Dpia

    with rt.db.session(AccessContext.system("test")) as s:
        medical = s.query(Account).filter_by(slug="cabinet-lefevre").one().id
        with acting_for(s, medical):
            s.execute(delete(Dpia).where(Dpia.account_id == medical))
    return {}


def _keep_a_recording_past_six_months(rt: Runtime) -> dict[str, str]:
    import uuid

    from permanence.accounts.model import Account
    from permanence.calls.model import Call
    from permanence.db import acting_for
    from permanence.recordings.model import Recording

    with rt.db.session(AccessContext.system("test")) as s:
        plumber = s.query(Account).filter_by(slug="plomberie-durand").one().id
        with acting_for(s, plumber):
            call = (
                s.query(Call)
                .filter(Call.account_id == plumber, Call.caller_id.is_not(None))
                .first()
            )
            assert call is not None
            s.add(
                Recording(
                    account_id=plumber,
                    call_id=call.id,
                    caller_id=call.caller_id,
                    mandate_id=call.mandate_id,
                    provider_sid=f"RE{uuid.uuid4().hex}",
                    storage_key="absent",
                    created_at=utcnow() - dt.timedelta(days=200),
                )
            )
    return {}


# check -> what the demo passes with, the mistake made behind the services' back, and the
# failure it must cause (formatted with what the mistake returned). Never a person named:
# ids, slugs and references only.
DEMO_CASES = {
    "staff.training": (
        "PASS staff.training",
        _expire_the_operators_training,
        "FAIL staff.training: 1 of 5 staff member(s) may not handle data\n"
        "  - user {operator} (operator): your data-protection training has expired",
    ),
    "breaches.notified": (
        "PASS breaches.notified: 1 breach(es) registered (1 closed), 1 client(s)",
        _add_a_client_to_the_closed_breach_without_a_notice,
        "FAIL breaches.notified: 1 breach(es) kept from a client concerned\n"
        "  - {breach}: closed without notifying phase 1 to cabinet-lefevre",
    ),
    "contracts.signed": (
        "PASS contracts.signed: 3 account(s) under a signed SCC contract",
        _sign_a_placeholder_contract,
        "FAIL contracts.signed: 1 account(s) without a signed contract document\n"
        "  - cabinet-lefevre: contract v2: not generated on the standard contractual clauses",
    ),
    "dpia.current": (
        "PASS dpia.current: 2 processing(s) needing a DPIA",
        _delete_the_medical_accounts_dpia,
        "FAIL dpia.current: 1 DPIA(s) missing or outdated (Art. 35)\n"
        "  - cabinet-lefevre (health): no validated DPIA",
    ),
    "retention.records": (
        "PASS retention.records: no record past its mandate's retention",
        _keep_a_recording_past_six_months,
        "FAIL retention.records: 1 account(s) keep records past their retention\n"
        "  - plomberie-durand: 1 recordings",
    ),
}


@pytest.mark.gdpr("Art. 5(1)(e)", "Art. 28(3)", "Art. 35")
@pytest.mark.parametrize("code", list(DEMO_CASES))
def test_a_check_passes_on_the_demo_and_fails_on_its_mistake_alone(
    demo_env: dict[str, str], settings: Settings, tmp_path: Path, code: str
) -> None:
    passing, mistake, failing = DEMO_CASES[code]
    report = tmp_path / "report.html"
    proc = run_cli(demo_env, "compliance", "check", "--report", str(report))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout and passing in proc.stdout
    assert f"Les {len(checks.registered())} contrôles sont satisfaits" in report.read_text()
    settings.master_key_file = settings.data_dir / "master.key"
    settings.master_key = None
    rt = Runtime.from_settings(settings)
    try:
        made = mistake(rt)
    finally:
        rt.close()
    proc = run_cli(demo_env, "compliance", "check")
    assert proc.returncode == 1
    assert failing.format(**made) in proc.stdout
    # That check alone fails, and the error line names it.
    assert proc.stdout.count("FAIL ") == 1
    assert proc.stderr.strip() == f"error: 1 compliance check(s) failed: {code}"
    assert "@permanence.example" not in proc.stdout  # ids, not e-mail addresses


@pytest.mark.gdpr("CSP L.1110-4")
def test_need_to_know_on_the_demo_the_dpo_exports_the_access_list_and_the_check_follows(
    demo_env: dict[str, str],
) -> None:
    proc = run_cli(demo_env, "compliance", "check")
    assert "PASS access.need_to_know: 1 health-data account(s)" in proc.stdout
    listed = run_cli(demo_env, "access", "list", "--account", "cabinet-lefevre")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.startswith("user_id,email,name,role,basis,since,until")
    assert any(",operator,assigned," in r for r in rows)
    for r in rows:
        if ",operator,assigned," in r:
            email = r.split(",")[1]
            done = run_cli(
                demo_env, "access", "unassign", "--account", "cabinet-lefevre", "--email", email
            )
            assert done.returncode == 0, done.stderr
    proc = run_cli(demo_env, "compliance", "check")
    assert proc.returncode == 1
    assert "  - cabinet-lefevre: health data, but no operator assigned" in proc.stdout
