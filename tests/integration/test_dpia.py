"""DPIA (Art. 35): which processings need one, versions on the CNIL PIA structure, the DPO's
validation and the client's opinion, and the check that fails without a current one."""

from __future__ import annotations

import datetime as dt

import pytest

from permanence.compliance import checks
from permanence.context import AccessContext, Role
from permanence.dpia import service as dpias
from permanence.errors import Conflict, PermissionDenied, ValidationFailed
from permanence.mandates.parsing import parse_mandate
from permanence.runtime import Runtime
from tests.factories import ctx_for, demo_mandate_text, make_account


def _result(rt: Runtime, now: dt.datetime | None = None) -> checks.CheckResult:
    return next(r for r in checks.run_checks(rt, now) if r.code == "dpia.current")


def _desk(account_id: object, role: Role = Role.DPO) -> AccessContext:
    return AccessContext(role=role, reason="dpia", account_id=account_id)  # type: ignore[arg-type]


@pytest.mark.gdpr("Art. 35")
def test_art35_a_medical_account_needs_a_validated_current_dpia(rt: Runtime) -> None:
    medical = make_account(rt)
    make_account(rt, "cabinet-moreau-avocats")
    result = _result(rt)
    assert not result.passed
    assert result.evidence == ["cabinet-lefevre (health): no validated DPIA"]
    mandate = parse_mandate(demo_mandate_text("cabinet-lefevre"))
    draft = dpias.draft_content(rt.settings, mandate, "health").model_dump()
    # The CNIL method's three risks, each with severity and likelihood, are required.
    incomplete = {**draft, "risks": draft["risks"][:2]}
    with rt.db.session(_desk(medical.id)) as s, pytest.raises(ValidationFailed) as exc:
        dpias.save_version(s, "health", incomplete)
    assert exc.value.problems == ["risks: Value error, assess each of the three risks once"]
    with rt.db.session(_desk(medical.id)) as s:
        v1 = dpias.save_version(s, "health", draft)
        assert (v1.version, v1.mandate_version) == (1, 1)
    assert not _result(rt).passed  # a draft is not a DPIA
    with rt.db.session(_desk(medical.id, Role.ADMIN)) as s, pytest.raises(PermissionDenied):
        dpias.validate(s, v1.id, "ok")
    with rt.db.session(_desk(medical.id)) as s:
        with pytest.raises(ValidationFailed, match="opinion"):
            dpias.validate(s, v1.id, "  ")
        dpias.validate(s, v1.id, "Risques résiduels acceptables.")
        with pytest.raises(Conflict):
            dpias.validate(s, v1.id, "again")
    assert _result(rt).passed
    # The client (the controller) gives its opinion on the validated version.
    with rt.db.session(ctx_for(medical.id, role=Role.CLIENT)) as s:
        dpias.record_client_opinion(s, v1.id, "Avis favorable.")
    with rt.db.session(_desk(medical.id)) as s:
        assert dpias.versions(s, "health")[0].client_opinion == "Avis favorable."
    # Three years on, it must be re-examined.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3 * 365 + 1)
    assert _result(rt, later).evidence == [
        "cabinet-lefevre (health): outdated: validated more than three years ago"
    ]


@pytest.mark.gdpr("Art. 35")
def test_art35_a_new_mandate_version_makes_the_dpia_outdated(rt: Runtime) -> None:
    from permanence.accounts.service import import_mandate

    account = make_account(rt, "plomberie-durand")  # records calls: evaluates the operators
    mandate = parse_mandate(demo_mandate_text("plomberie-durand"))
    with rt.db.session(_desk(account.id, Role.SYSTEM)) as s:
        assert [st.processing for st in dpias.account_status(s)] == ["recording"]
        v1 = dpias.save_version(
            s, "recording", dpias.draft_content(rt.settings, mandate, "recording").model_dump()
        )
        dpias.validate(s, v1.id, "Écoute limitée à un appel sur cinq.")
    assert _result(rt).passed
    with rt.db.session(_desk(account.id, Role.ADMIN)) as s:
        import_mandate(
            s, demo_mandate_text("plomberie-durand").replace("0.2", "0.3"), account_id=account.id
        )
    assert _result(rt).evidence == [
        "plomberie-durand (recording): outdated: assessed mandate v1, v2 in force"
    ]
