"""Sub-processors' deletion confirmations at off-boarding (Art. 28(3)(g), 28(4)): each one is
asked, recorded with date and evidence, and the off-boarding is complete only with all of
them; the compliance check fails on one missing past its 30 days."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from pathlib import Path

import pytest

from permanence.compliance.checks import run_checks
from permanence.context import AccessContext, Role
from permanence.contracts import deletions, offboarding
from permanence.contracts.model import SubProcessor
from permanence.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from permanence.render import PARIS
from permanence.runtime import Runtime
from tests.conftest import cli_env, run_cli
from tests.factories import make_account


def _subprocessors(rt: Runtime) -> None:
    with rt.db.session(AccessContext.system("t")) as s:
        for code, name, status in (
            ("hebergeur", "Hébergeur SAS", "active"),
            ("sms", "Passerelle SMS SA", "active"),
            ("parti", "Ancien Prestataire", "removed"),
        ):
            s.add(
                SubProcessor(
                    code=code,
                    name=name,
                    service="service",
                    country="FR",
                    safeguard="eea",
                    status=status,
                )
            )


def _check(rt: Runtime, now: dt.datetime) -> tuple[bool, str, list[str]]:
    [result] = [r for r in run_checks(rt, now) if r.code == "offboarding.subprocessors"]
    return result.passed, result.summary, result.evidence


@pytest.mark.gdpr("Art. 28(3)(g)")
def test_art28_3_g_offboarding_is_complete_only_with_each_subprocessors_confirmation(
    rt: Runtime,
) -> None:
    _subprocessors(rt)
    account = make_account(rt)
    dpo = AccessContext(
        role=Role.DPO, reason="offboard", account_id=account.id, actor_id=uuid.uuid4()
    )
    with rt.db.session(dpo) as s:
        cert = offboarding.destroy_account(s, rt.keyring, account.id, export=None)
    assert [p["code"] for p in cert.document["subprocessors"]] == ["hebergeur", "sms"]
    with rt.db.session(dpo, readonly=True) as s:
        state = deletions.state_of(s, account.id)
        # Kept after the account's rows went: the provider's proof.
        assert "subprocessor_deletions" in offboarding.remaining_rows(s, account.id)
    assert not state.complete and state.missing == ["hebergeur", "sms"]
    assert "non confirmée" in state.lines[0].state_fr()
    now = dt.datetime.now(dt.UTC)
    passed, summary, _ = _check(rt, now)
    assert passed and "1 awaiting" in summary  # within its 30 days

    today = now.astimezone(PARIS).date()  # the service dates confirmations in Paris
    with rt.db.session(dpo) as s:
        with pytest.raises(ValidationFailed) as bad:
            deletions.confirm_deletion(
                s,
                account.id,
                "hebergeur",
                confirmed_on=today + dt.timedelta(days=1),
                evidence=" ",
                evidence_sha256="XYZ",
            )
        assert len(bad.value.problems) == 3
    with pytest.raises(NotFound), rt.db.session(dpo) as s:
        deletions.confirm_deletion(s, account.id, "parti", confirmed_on=today, evidence="x")
    op = AccessContext(role=Role.OPERATOR, reason="t", account_id=account.id, actor_id=uuid.uuid4())
    with pytest.raises(PermissionDenied), rt.db.session(op) as s:
        deletions.confirm_deletion(s, account.id, "sms", confirmed_on=today, evidence="x")
    digest = "a" * 64
    with rt.db.session(dpo) as s:
        line = deletions.confirm_deletion(
            s,
            account.id,
            "hebergeur",
            confirmed_on=today,
            evidence="attestation HEB-2026-114",
            evidence_sha256=digest,
        )
    assert line.confirmed and "attestation HEB-2026-114" in line.state_fr()
    with pytest.raises(Conflict), rt.db.session(dpo) as s:
        deletions.confirm_deletion(s, account.id, "hebergeur", confirmed_on=today, evidence="y")

    # Still one missing: past 30 days the compliance check fails and names it.
    passed, summary, evidence = _check(rt, now + dt.timedelta(days=31))
    assert not passed and summary == "1 deletion confirmation(s) overdue"
    assert len(evidence) == 1 and evidence[0].endswith(
        ": sms has not confirmed the deletion (30 days passed)"
    )
    with rt.db.session(dpo) as s:
        deletions.confirm_deletion(s, account.id, "sms", confirmed_on=today, evidence="ticket 77")
    with rt.db.session(dpo, readonly=True) as s:
        assert deletions.state_of(s, account.id).complete
    passed, summary, _ = _check(rt, now + dt.timedelta(days=31))
    assert passed and summary.startswith("1 off-boarding(s) complete")


@pytest.mark.gdpr("Art. 28(3)(g)")
def test_art28_3_g_the_dpo_records_a_confirmation_from_the_command_line(
    rt: Runtime, tmp_path: Path
) -> None:
    _subprocessors(rt)
    account = make_account(rt)
    dpo = AccessContext(role=Role.DPO, reason="offboard", account_id=account.id)
    with rt.db.session(dpo) as s:
        offboarding.destroy_account(s, rt.keyring, account.id, export=None)
    env = cli_env(rt.settings)
    today = dt.datetime.now(PARIS).date()
    letter = tmp_path / "attestation.pdf"
    letter.write_bytes(b"%PDF-1.7 attestation")
    proc = run_cli(env, "contract", "confirm-deletion", "--account", account.slug,
                   "--subprocessor", "sms", "--evidence", "")  # fmt: skip
    assert proc.returncode == 1 and "evidence" in proc.stderr
    proc = run_cli(env, "contract", "confirm-deletion", "--account", account.slug,
                   "--subprocessor", "sms", "--evidence", "attestation SMS-9",
                   "--document", str(letter), "--confirmed-on", today.isoformat())  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "sms confirmed; still awaited: hebergeur" in proc.stdout
    proc = run_cli(env, "contract", "offboarding", "--account", account.slug)
    assert f"sms: confirmée le {today:%d/%m/%Y} (attestation SMS-9)" in proc.stdout
    assert "hebergeur: demandée le" in proc.stdout and "off-boarding not complete" in proc.stdout
    with rt.db.session(dpo, readonly=True) as s:
        [line] = [x for x in deletions.state_of(s, account.id).lines if x.code == "sms"]
    assert line.evidence_sha256 == hashlib.sha256(letter.read_bytes()).hexdigest()
