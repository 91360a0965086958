"""Evaluation grids are deleted by the retention sweep after their mandate's ``evaluation``
period, at most 1 year (CNIL), and the retention check fails while one is kept past its
date. Dates are written out, not computed with the code under test."""

from __future__ import annotations

import datetime as dt
import uuid
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select

from permanence.accounts.model import MandateVersion
from permanence.accounts.service import import_mandate
from permanence.compliance import checks
from permanence.context import AccessContext, Role
from permanence.evaluations.model import Evaluation
from permanence.filestore import LocalStore
from permanence.retention import service as retention
from permanence.runtime import Runtime
from tests.factories import demo_mandate_text, make_account

UTC = dt.UTC


def _grid(rt: Runtime, account_id: uuid.UUID, created_at: dt.datetime) -> uuid.UUID:
    with rt.db.session(AccessContext.system("test", account_id)) as s:
        mandate_id = s.scalars(
            select(MandateVersion.id).where(MandateVersion.account_id == account_id)
        ).one()
        grid = Evaluation(
            account_id=account_id,
            call_id=uuid.uuid4(),
            mandate_id=mandate_id,
            operator_id=uuid.uuid4(),
            evaluator_id=uuid.uuid4(),
            greeting=2,
            identification=2,
            accuracy=1,
            courtesy=2,
            instructions=0,
            created_at=created_at,
        )
        s.add(grid)
        s.flush()
        return grid.id


def _kept(rt: Runtime, account_id: uuid.UUID) -> list[uuid.UUID]:
    with rt.db.session(AccessContext.system("test", account_id), readonly=True) as s:
        return list(s.scalars(select(Evaluation.id).where(Evaluation.account_id == account_id)))


def _check(rt: Runtime, now: dt.datetime) -> checks.CheckResult:
    return next(r for r in checks.run_checks(rt, now) if r.code == "retention.records")


@pytest.mark.gdpr("Art. 5(1)(e)")
def test_art5_1_e_grids_go_after_the_mandates_period_or_one_year_and_the_check_sees_them(
    rt: Runtime,
) -> None:
    # The plumber declares three months for its grids; the medical practice declares none,
    # so its grids are kept the CNIL's year.
    plumber = make_account(rt, "plomberie-durand", with_mandate=False)
    admin = AccessContext(role=Role.ADMIN, reason="test", account_id=plumber.id)
    with rt.db.session(admin) as s:
        text = demo_mandate_text("plomberie-durand")
        assert "evaluation: P1Y" in text
        import_mandate(s, text.replace("evaluation: P1Y", "evaluation: P3M"), account_id=plumber.id)
    medical = make_account(rt, "cabinet-lefevre")
    _grid(rt, plumber.id, dt.datetime(2026, 1, 31, 12, 0, tzinfo=UTC))
    one_year = _grid(rt, medical.id, dt.datetime(2025, 6, 15, 8, 0, tzinfo=UTC))
    store = LocalStore(rt.settings.recordings_dir)

    # 31 January + 3 months = 30 April (month end), 12:00: a minute before, nothing is due.
    before = dt.datetime(2026, 4, 30, 11, 59, tzinfo=UTC)
    assert _check(rt, before).passed
    assert retention.sweep(rt.db, store, now=before, kinds=["evaluations"]).counts == {}

    # At 12:00 the plumber's grid is kept past its date: the check fails until the sweep runs.
    due = dt.datetime(2026, 4, 30, 12, 0, tzinfo=UTC)
    failed = _check(rt, due)
    assert not failed.passed
    assert failed.evidence == ["plomberie-durand: 1 evaluations"]
    report = retention.sweep(rt.db, store, now=due, kinds=["evaluations"])
    assert report.counts == {("plomberie-durand", "evaluations"): 1}
    assert _kept(rt, plumber.id) == [] and _kept(rt, medical.id) == [one_year]
    assert _check(rt, due).passed

    # The practice's grid: one year to the minute.
    assert _check(rt, dt.datetime(2026, 6, 15, 7, 59, tzinfo=UTC)).passed
    year = dt.datetime(2026, 6, 15, 8, 0, tzinfo=UTC)
    assert _check(rt, year).evidence == ["cabinet-lefevre: 1 evaluations"]
    report = retention.sweep(rt.db, store, now=year, kinds=["evaluations"], batch=1)
    assert report.counts == {("cabinet-lefevre", "evaluations"): 1}
    assert _kept(rt, medical.id) == []


@pytest.mark.gdpr("Art. 30")
def test_art30_the_providers_evaluation_record_says_its_retention_and_starting_event(
    rt: Runtime,
) -> None:
    from permanence.compliance import art30

    make_account(rt, "plomberie-durand")  # its intervention purpose declares evaluation P1Y
    with rt.db.session(AccessContext(role=Role.DPO, reason="test")) as s:
        own = art30.controller_record(s, rt.settings)
        records = art30.processor_record(s, rt.settings)
    [grids] = [r for r in own if r.name.startswith("Évaluation de la qualité des appels")]
    assert grids.register == "30(1)"
    assert "un an au plus, à compter de l'évaluation" in grids.retention
    assert "suppression automatique" in grids.retention
    assert "l'opérateur évalué" in grids.recipients
    [intervention] = [r for r in records if "grilles d'évaluation" in r.retention]
    assert "grilles d'évaluation : 1 an (à compter de l'évaluation, un an au plus)" in (
        intervention.retention
    )
    assert "sans purge automatique" not in intervention.retention.split("grilles")[1]


def test_off_boarding_deletes_the_grids_and_never_hands_them_to_the_client(
    rt: Runtime, tmp_path: Path
) -> None:
    from permanence.contracts import offboarding

    account = make_account(rt, "plomberie-durand")
    _grid(rt, account.id, dt.datetime(2026, 11, 2, 9, 30, tzinfo=UTC))
    ctx = AccessContext(role=Role.DPO, reason="offboard", account_id=account.id)
    with rt.db.session(ctx) as s:
        exported = offboarding.export_account(s, rt.keyring, account.id, tmp_path)
    with zipfile.ZipFile(exported.path) as zf:
        names = zf.namelist()
    assert "evaluations.json" not in names and "messages.json" in names
    with rt.db.session(ctx) as s:
        cert = offboarding.destroy_account(s, rt.keyring, account.id, export=exported)
    assert cert.document["rows_deleted"]["evaluations"] == 1
    assert _kept(rt, account.id) == []
