"""The Art. 30 records as an inspector reads them: derived from the real configuration (the
outside services are sub-processors with their country and transfer tool), the processor's
identity from the settings, Art. 9 purposes sensitive whatever their fields, each retention
period with the event it runs from."""

from __future__ import annotations

import datetime as dt

from permanence.compliance import art30, checks
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.contracts import service as contracts
from permanence.runtime import Runtime
from tests.conftest import cli_env, run_cli
from tests.factories import make_account

DPO = AccessContext(role=Role.DPO, reason="art30")


def _record(rt: Runtime, purpose: str) -> art30.ProcessingRecord:
    with rt.db.session(DPO) as s:
        records = art30.processor_record(s, rt.settings)
    return next(r for r in records if r.purposes == purpose)


def _check(rt: Runtime, code: str) -> checks.CheckResult:
    return next(r for r in checks.run_checks(rt) if r.code == code)


def test_art9_recital35_booking_care_is_health_data_whatever_the_fields(rt: Runtime) -> None:
    make_account(rt)
    booking = _record(rt, "Prise de rendez-vous")
    # No field of the booking purpose is in the health category: its Art. 9 basis decides.
    assert "données de santé" not in booking.data_categories
    assert booking.sensitive_data.startswith("oui : données de santé (art. 9(2)(h), soins")
    make_account(rt, "plomberie-durand")
    assert _record(rt, "Demande d'intervention").sensitive_data == "non"


def test_art30_2_a_processor_name_and_contact_details_from_the_settings(rt: Runtime) -> None:
    rt.settings.provider_name = "Allô Secrétariat SARL"
    rt.settings.provider_address = "8 quai des Chartrons, 33000 Bordeaux"
    rt.settings.provider_contact_email = "rgpd@allo-secretariat.example"
    make_account(rt)
    record = _record(rt, "Prise de rendez-vous")
    assert record.processor == (
        "Allô Secrétariat SARL, 8 quai des Chartrons, 33000 Bordeaux ; "
        "contact : rgpd@allo-secretariat.example"
    )
    with rt.db.session(DPO) as s:
        own = art30.controller_record(s, rt.settings)
        html = art30.export(s, rt.settings, "html")
    assert own[0].controller_contact == (
        "8 quai des Chartrons, 33000 Bordeaux ; rgpd@allo-secretariat.example"
    )
    assert "contact : rgpd@allo-secretariat.example" in html


def test_art30_1_f_retention_periods_name_the_event_they_run_from(rt: Runtime) -> None:
    make_account(rt)
    retention = _record(rt, "Prise de rendez-vous").retention
    assert "rendez-vous : 1 an (à compter du début du rendez-vous)" in retention
    assert "journal d'appels : 1 an (à compter du début de l'appel)" in retention


def test_art28_configured_services_are_subprocessors_with_their_country_and_transfer_tool(
    rt: Runtime,
) -> None:
    make_account(rt)
    rt.settings.twilio_auth_token = "token"  # calls through api.twilio.com (the default)
    rt.settings.smtp_host = "smtp-relay.brevo.com"
    rt.settings.backup_storage = "https://s3.fr-par.scw.cloud/permanence-backups"
    rt.settings.sms_gateway_url = "http://127.0.0.1:9000/sms"  # this machine: not outside
    record = _record(rt, "Prise de rendez-vous")
    assert "Twilio (téléphonie (appels et enregistrements), US, api.twilio.com) : utilisé par " in (
        record.subprocessors
    )
    assert "Brevo (relais de messagerie (e-mails), FR" in record.subprocessors
    assert "Scaleway (stockage des sauvegardes chiffrées, FR" in record.subprocessors
    assert "127.0.0.1" not in record.subprocessors
    # A US provider is a transfer: named with its (here missing) Chapter V tool.
    assert "US (Twilio, téléphonie" in record.transfers
    assert "Twilio : garantie non déclarée" in record.safeguards
    result = _check(rt, "subprocessors.configured")
    assert not result.passed
    assert result.evidence == [
        "telephony (api.twilio.com): not in the sub-processor register",
        "smtp (smtp-relay.brevo.com): not in the sub-processor register",
        "backup (s3.fr-par.scw.cloud): not in the sub-processor register",
    ]
    with rt.db.session(DPO) as s:
        contracts.register_initial(
            s,
            code="twilio",
            name="Twilio Inc.",
            service="téléphonie",
            country="US",
            safeguard="standard_contractual_clauses",
            host="twilio.com",
        )
        contracts.register_initial(
            s, code="brevo", name="Brevo SAS", service="e-mails", country="FR", host="brevo.com"
        )
        # Announced to the clients but not in effect yet: using it already breaks 28(2).
        contracts.propose_subprocessor(
            s,
            code="scaleway",
            name="Scaleway SAS",
            service="stockage des sauvegardes",
            country="FR",
            host="scw.cloud",
            mailer=None,
            portal_url="https://p.example",
        )
    result = _check(rt, "subprocessors.configured")
    assert result.evidence == [
        "backup (s3.fr-par.scw.cloud): sub-processor 'scaleway' announced, not in effect"
    ]
    record = _record(rt, "Prise de rendez-vous")
    assert "Twilio Inc. (téléphonie, US) : téléphonie (appels et enregistrements), configuré" in (
        record.subprocessors
    )
    assert "Twilio Inc. : clauses contractuelles types (art. 46(2)(c))" in record.safeguards
    with rt.db.session(DPO) as s:
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
        assert [a.subprocessor.code for a in contracts.apply_due_changes(s, later)] == ["scaleway"]
    assert _check(rt, "subprocessors.configured").passed


def test_the_subprocessor_command_lists_configured_services_and_proposes_one(
    rt: Runtime, settings: Settings
) -> None:
    make_account(rt)
    env = {**cli_env(settings), "PERMANENCE_BACKUP_STORAGE": "s3.fr-par.scw.cloud"}
    listed = run_cli(env, "subprocessor", "list")
    assert listed.returncode == 0, listed.stderr
    assert "configured backup: s3.fr-par.scw.cloud (FR) -> NOT REGISTERED" in listed.stdout
    bad = run_cli(
        env,
        *("subprocessor", "propose", "--code", "scaleway", "--name", "Scaleway SAS"),
        *("--service", "sauvegardes", "--country", "FR", "--host", "https://s3.fr-par.scw.cloud"),
    )
    assert bad.returncode == 2 and "host must be a host name or domain" in bad.stderr
    proposed = run_cli(
        env,
        *("subprocessor", "propose", "--code", "scaleway", "--name", "Scaleway SAS"),
        *("--service", "sauvegardes", "--country", "FR", "--host", "scw.cloud"),
    )
    assert proposed.returncode == 0, proposed.stderr
    assert "scaleway: announced, takes effect" in proposed.stdout
    listed = run_cli(env, "subprocessor", "list")
    assert "scaleway  proposed  FR  eea  host scw.cloud" in listed.stdout
    assert "configured backup: s3.fr-par.scw.cloud (FR) -> scaleway" in listed.stdout
    assert run_cli(env, "subprocessor", "apply").stdout.strip() == "no change due"
