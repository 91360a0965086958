"""Call recording (CNIL guidance): the callers' notice says who listens and why, and the
staff were informed that calls are recorded (checked)."""

from __future__ import annotations

import pytest

from permanence.compliance import checks
from permanence.context import AccessContext, Role
from permanence.mandates.layer2 import second_layer
from permanence.mandates.parsing import parse_mandate
from permanence.runtime import Runtime
from permanence.staff.training import add_course, record_training
from permanence.web.pages.render import translations as catalog
from tests.factories import OPERATOR_ID, demo_mandate_text, make_account


def _check(rt: Runtime) -> checks.CheckResult:
    return next(r for r in checks.run_checks(rt) if r.code == "recordings.staff_informed")


@pytest.mark.gdpr("CNIL recording")
def test_cnil_recording_the_notice_says_who_listens_and_staff_are_informed(rt: Runtime) -> None:
    mandate = parse_mandate(demo_mandate_text("plomberie-durand"))
    notice = second_layer(mandate, 1, "fr", catalog("fr").gettext)
    who = [line for line in notice.recording if line.startswith("Qui écoute")]
    assert who and "superviseurs" in who[0] and mandate.controller.name in who[0]
    assert "jamais les opérateurs" in who[0]

    make_account(rt, "plomberie-durand")  # records one call in five
    result = _check(rt)
    assert result.evidence == [
        f"user {OPERATOR_ID} (operator): not informed of call recording "
        "(information-enregistrement)"
    ]
    with rt.db.session(AccessContext(role=Role.DPO, reason="training")) as s:
        add_course(s, code="information-enregistrement", title_fr="Enregistrement des appels")
        record_training(s, OPERATOR_ID, course="information-enregistrement")
    assert _check(rt).passed
