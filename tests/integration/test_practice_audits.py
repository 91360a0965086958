"""Audits of the service and of sub-processors: recorded, followed up, overdue ones fail the
compliance check, and the history goes in the evidence pack."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest
from sqlalchemy import func, select

from permanence.audits import service as audits
from permanence.audits.model import AuditAction, PracticeAudit
from permanence.checks import run_checks
from permanence.compliance import evidence
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.contracts import service as contracts
from permanence.errors import ValidationFailed
from permanence.render import PARIS
from permanence.runtime import Runtime
from tests.conftest import cli_env, run_cli
from tests.web.conftest import make_person

TODAY = dt.datetime.now(PARIS).date()  # the audits' "today" is Paris's


def _day(days: int) -> str:
    return (TODAY + dt.timedelta(days=days)).isoformat()


@pytest.mark.gdpr("Art. 28(3)(h)")
def test_audits_are_recorded_followed_up_and_fail_the_check_when_overdue(
    rt: Runtime, settings: Settings
) -> None:
    owner = make_person(rt, Role.DPO, "dpo@permanence.example")
    with rt.db.session(AccessContext(role=Role.DPO, reason="test", actor_id=owner.id)) as s:
        contracts.register_initial(
            s, code="ovh", name="OVH SAS", service="hébergement", country="FR"
        )
    rt.close()
    env = cli_env(settings)

    def check() -> str:
        done = run_cli(env, "compliance", "check")
        line = [x for x in done.stdout.splitlines() if "audits.due" in x]
        assert len(line) == 1, done.stdout
        return line[0]

    assert check() == "PASS audits.due: no audit or follow-up action overdue; never audited: ovh"
    # The service's own audit, a year ago, whose next one was due last month.
    ok = run_cli(
        env,
        "audits", "record", "--target", "service", "--date", _day(-400),
        "--scope", "Contrôle des accès et de la journalisation",
        "--findings", "Deux comptes inactifs non désactivés",
        "--next-due", _day(-30),
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert check().startswith("FAIL audits.due: 1 audit(s) and 0 follow-up action(s) overdue")
    # The host's audit, with a follow-up action due yesterday.
    ok = run_cli(
        env,
        "audits", "record", "--target", "ovh", "--date", _day(-10),
        "--scope", "Certification HDS et sauvegardes",
        "--findings", "Plan de reprise non testé depuis un an",
        "--next-due", _day(355),
        "--action", f"Obtenir le rapport du test de reprise|{owner.email}|{_day(-1)}",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    listed = run_cli(env, "audits", "list").stdout
    assert f"{_day(-400)} service: next due {_day(-30)} OVERDUE" in listed
    assert "[overdue] Obtenir le rapport du test de reprise" in listed
    assert check().startswith("FAIL audits.due: 1 audit(s) and 1 follow-up action(s) overdue")
    action_id = listed.split("Obtenir le rapport du test de reprise")[1].splitlines()[0].split()[-1]
    assert run_cli(env, "audits", "done", action_id).returncode == 0
    # A new audit of the service: its next due date is the one that counts now.
    ok = run_cli(
        env,
        "audits", "record", "--target", "service", "--date", _day(0),
        "--scope", "Revue annuelle", "--findings", "Comptes inactifs désactivés",
        "--next-due", _day(365),
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert check() == "PASS audits.due: no audit or follow-up action overdue"
    # The history is in the evidence pack.
    rt2 = Runtime.from_settings(settings)
    try:
        pack = evidence.build(rt2, AccessContext.system("test"))
    finally:
        rt2.close()
    z = zipfile.ZipFile(io.BytesIO(pack.data))
    history = z.read("audits.csv").decode()
    assert history.count("\n") == 4  # header + 3 audits
    assert "Plan de reprise non testé" in history and "ovh" in history
    actions = z.read("audit-actions.csv").decode()
    assert f"dpo:{owner.id}" in actions and ",done" in actions
    assert owner.email not in actions
    assert evidence.verify_pack(pack.data) == []


def test_bad_audits_are_refused_and_nothing_is_written(rt: Runtime, settings: Settings) -> None:
    from tests.factories import make_account

    make_person(rt, Role.OPERATOR, "op@permanence.example")
    client = make_person(rt, Role.CLIENT, "c@client.example", make_account(rt).id)
    rt.close()
    env = cli_env(settings)
    base = ["audits", "record", "--date", _day(-1), "--next-due", _day(300)]
    cases = {
        "unknown audit target": ["--target", "nope", "--scope", "x", "--findings", "y"],
        "contains personal data": [
            "--target", "service", "--scope", "Appel de Camille au 06 12 34 56 78",
            "--findings", "y",
        ],
        "must be an active staff member": [
            "--target", "service", "--scope", "x", "--findings", "y",
            "--action", f"Faire|{client.email}|{_day(5)}",
        ],
        "expected 'WHAT|OWNER-EMAIL|YYYY-MM-DD'": [
            "--target", "service", "--scope", "x", "--findings", "y", "--action", "Faire",
        ],
        "expected a date": ["--target", "service", "--scope", "x", "--findings", "y",
                            "--date", "hier"],
    }  # fmt: skip
    for message, args in cases.items():
        done = run_cli(env, *base, *args)
        assert done.returncode == 2, (message, done.stdout, done.stderr)
        assert message in done.stderr, (message, done.stderr)
        assert "06 12 34 56 78" not in done.stderr
    future = run_cli(
        env, "audits", "record", "--target", "service", "--date", _day(2),
        "--scope", "x", "--findings", "y", "--next-due", _day(300),
    )  # fmt: skip
    assert future.returncode == 2 and "future" in future.stderr
    rt2 = Runtime.from_settings(settings)
    try:
        with rt2.db.session(AccessContext.system("test"), readonly=True) as s:
            assert s.scalar(select(func.count()).select_from(PracticeAudit)) == 0
            assert s.scalar(select(func.count()).select_from(AuditAction)) == 0
    finally:
        rt2.close()


def test_after_midnight_in_paris_today_is_the_paris_day(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 23:30 UTC on 6 December it is 00:30 on the 7th in Paris: an audit done that day is
    not "in the future", one dated the 8th is, and an action due on the 6th is overdue (an
    hour earlier, at 23:30 in Paris on the 6th, it was not)."""
    owner = make_person(rt, Role.DPO, "dpo@permanence.example")
    late_evening = dt.datetime(2026, 12, 6, 23, 30, tzinfo=dt.UTC)
    monkeypatch.setattr(audits, "utcnow", lambda: late_evening)
    dpo = AccessContext(role=Role.DPO, reason="test", actor_id=owner.id)
    with rt.db.session(dpo) as s:
        with pytest.raises(ValidationFailed) as future:
            audits.record_audit(
                s, target="service", performed_on=dt.date(2026, 12, 8), scope="x",
                findings="y", next_due_on=dt.date(2027, 12, 8),
            )  # fmt: skip
        assert future.value.problems == ["performed_on:future"]
    with rt.db.session(dpo) as s:
        audits.record_audit(
            s, target="service", performed_on=dt.date(2026, 12, 7), scope="Accès",
            findings="Rien", next_due_on=dt.date(2027, 12, 7),
            actions=[audits.NewAction("Revoir", owner.email, dt.date(2026, 12, 6))],
        )  # fmt: skip

    def audits_due(now: dt.datetime) -> bool:
        return next(r for r in run_checks(rt, now) if r.code == "audits.due").passed

    assert not audits_due(late_evening)
    assert audits_due(late_evening - dt.timedelta(hours=1))
