"""Breaches as the law reads them (Art. 33-34): the processor notifies every breach to each
client it affects, a first notice may go out incomplete, Art. 34 is each controller's own
decision, the "encrypted" exception only for unintelligible data, the scope counts every
action on personal data, each client gets a pre-filled CNIL notification, the register reads
French."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from sqlalchemy import select

from permanence.breaches import controller
from permanence.breaches import service as breaches
from permanence.breaches.model import BreachNotice
from permanence.context import AccessContext, Role
from permanence.db import utcnow
from permanence.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from permanence.messages import export
from permanence.messages import service as messages
from permanence.runtime import Runtime
from permanence.subjects import service as subjects
from tests.factories import OPERATOR_ID, ctx_for, make_account, make_caller

DPO = AccessContext(role=Role.DPO, reason="breach", actor_id=uuid.uuid4())
PORTAL = "https://p.example"
NATURE = "Compte d'opérateur utilisé par un tiers après hameçonnage"


def _tick() -> dt.datetime:
    time.sleep(0.01)
    t = utcnow()
    time.sleep(0.01)
    return t


def _complete(s: object, breach_id: uuid.UUID) -> None:
    breaches.update_contents(
        s,  # type: ignore[arg-type]
        breach_id,
        data_categories=["identity", "contact"],
        subject_categories=["callers"],
        contact_point="dpo@permanence.example",
        consequences="Risque d'appels frauduleux se réclamant du cabinet",
        measures="Compte bloqué, mot de passe et TOTP renouvelés",
    )


def _client(account_id: uuid.UUID) -> AccessContext:
    return ctx_for(account_id, role=Role.CLIENT, actor_id=uuid.uuid4(), reason="portal:breach")


def _notified(rt: Runtime, account_id: uuid.UUID, *, complete: bool = True) -> str:
    """A breach added by hand to one account and notified to it; returns its reference."""
    with rt.db.session(DPO) as s:
        b = breaches.open_breach(s, aware_at=utcnow() - dt.timedelta(hours=2), nature=NATURE)
        breaches.add_account(s, b.id, account_id, subjects=12, records=30)
        if complete:
            _complete(s, b.id)
        breaches.notify_controllers(s, b.id, mailer=None, portal_url=PORTAL)
        return b.reference


@pytest.mark.gdpr("Art. 33(2)")
def test_art33_2_processor_notifies_every_breach_no_unlikely_risk_path(rt: Runtime) -> None:
    account = make_account(rt)
    with rt.db.session(DPO) as s:
        b = breaches.open_breach(s, aware_at=utcnow(), nature=NATURE)
        breaches.add_account(s, b.id, account.id, subjects=3, records=3)
        # "Unlikely risk" is the controller's judgement (33(1)), not a reason the processor has.
        with pytest.raises(ValidationFailed) as refused:
            breaches.decide(s, b.id, "not_notified", "unlikely_risk")
        assert refused.value.key == "reason_needed"  # type: ignore[attr-defined]
        # Even "no personal data" is refused once a client's data is concerned.
        with pytest.raises(Conflict) as conflict:
            breaches.decide(s, b.id, "not_notified", "no_personal_data")
        assert conflict.value.key == "clients_affected"  # type: ignore[attr-defined]
        assert breaches.get_breach(s, b.id).decision == "pending"
    assert "unlikely_risk" not in breaches.NOT_NOTIFIED_REASONS


@pytest.mark.gdpr("Art. 33(2)")
def test_art33_2_breach_cannot_close_before_each_affected_client_is_notified(
    rt: Runtime,
) -> None:
    medical, plumber = make_account(rt), make_account(rt, "plomberie-durand")
    with rt.db.session(DPO) as s:
        b = breaches.open_breach(s, aware_at=utcnow(), nature=NATURE)
        bid = b.id
        breaches.add_account(s, bid, medical.id, subjects=3, records=3)
        _complete(s, bid)
        with pytest.raises(ValidationFailed) as refused:
            breaches.close(s, bid)
        assert refused.value.key == "clients_not_notified"  # type: ignore[attr-defined]
        assert refused.value.fields == ["cabinet-lefevre"]  # type: ignore[attr-defined]
        breaches.notify_controllers(s, bid, mailer=None, portal_url=PORTAL)
        # A second client found later: the breach cannot close until it is told too.
        breaches.add_account(s, bid, plumber.id, subjects=1, records=1)
        with pytest.raises(ValidationFailed) as refused:
            breaches.close(s, bid)
        assert refused.value.fields == [  # type: ignore[attr-defined]
            "cabinet-lefevre",  # the counts changed: phase 2 not sent to it yet
            "plomberie-durand",
        ]
        breaches.notify_controllers(s, bid, mailer=None, portal_url=PORTAL)
        breaches.close(s, bid)
        assert breaches.get_breach(s, bid).status == "closed"
        with pytest.raises(Conflict):
            breaches.notify_controllers(s, bid, mailer=None, portal_url=PORTAL)


@pytest.mark.gdpr("Art. 33(3)")
def test_art33_4_first_notice_may_go_out_incomplete_and_later_phases_complete_it(
    rt: Runtime,
) -> None:
    account = make_account(rt)
    with rt.db.session(DPO) as s:
        b = breaches.open_breach(s, aware_at=utcnow())
        bid = b.id
        breaches.add_account(s, bid, account.id, subjects=12, records=30)
        with pytest.raises(ValidationFailed) as refused:
            breaches.notify_controllers(s, bid, mailer=None, portal_url=PORTAL)
        assert refused.value.key == "nature_needed"  # type: ignore[attr-defined]
        breaches.update_contents(s, bid, nature=NATURE)
        [first] = breaches.notify_controllers(s, bid, mailer=None, portal_url=PORTAL)
        assert "Notification initiale, incomplète" in first.body
        assert "point de contact" in first.body and "mesures prises ou envisagées" in first.body
        assert "Point de contact : à préciser" in first.body
        # Closing needs the complete contents: the clients must receive them.
        with pytest.raises(ValidationFailed) as refused:
            breaches.close(s, bid)
        assert refused.value.key == "contents_missing"  # type: ignore[attr-defined]
        _complete(s, bid)
        [second] = breaches.notify_controllers(s, bid, mailer=None, portal_url=PORTAL)
        assert second.phase == 2
        assert "Notification initiale, incomplète" not in second.body
        assert "Compte bloqué" in second.body
        breaches.close(s, bid)


def test_art33_3_scope_counts_writes_list_views_and_exports_not_only_reads(
    rt: Runtime,
) -> None:
    medical = make_account(rt)
    plumber = make_account(rt, "plomberie-durand")
    lawyers = make_account(rt, "cabinet-moreau-avocats")
    a1 = make_caller(rt, plumber.id, first="Alice", last="Dubois", phone="0199001001")
    m1 = make_caller(rt, medical.id, first="Bruno", last="Faure", phone="0199001002")
    make_caller(rt, lawyers.id, first="Chloé", last="Morin", phone="0199001003")
    make_caller(rt, lawyers.id, first="Denis", last="Roux", phone="0199001004")
    x = OPERATOR_ID
    t1 = _tick()
    # A message written (no read at all) for a plumber's caller.
    with rt.db.session(ctx_for(plumber.id, actor_id=x, reason="call:x")) as s:
        messages.take_message(
            s,
            rt.keyring,
            caller_id=a1,
            purpose="intervention",
            values={
                "last_name": "Dubois",
                "phone": "0199001001",
                "address": "3 rue Haute, 44000 Nantes",
                "urgency": "à planifier",
                "description": "Robinet qui goutte",
            },
        )
    # A lookup that showed one medical caller (no caller named in the log).
    with rt.db.session(ctx_for(medical.id, actor_id=x, reason="call:x")) as s:
        assert [c.id for c in subjects.find(s, rt.keyring, phone="0199001002")] == [m1]
    # An export of the whole law firm's account.
    with rt.db.session(ctx_for(lawyers.id, actor_id=x, reason="export")) as s:
        export.account_csv(s, rt.keyring)
    t2 = _tick()
    with rt.db.session(DPO) as s:
        b = breaches.open_breach(s, aware_at=utcnow())
        scope = breaches.scope_to_actor(s, b.id, actor_id=x, start=t1, end=t2)
        assert set(scope.accounts) == {medical.id, plumber.id, lawyers.id}
        assert [(sc.account_id, sc.subject_id) for sc in scope.subjects] == [(plumber.id, a1)]
        view = breaches.breach_view(s, b.id)
        people = {a.slug: a.subjects for a in view.accounts}
    # The message written, the caller shown by the lookup, every caller of the exported account.
    assert people == {"plomberie-durand": 1, "cabinet-lefevre": 1, "cabinet-moreau-avocats": 2}


def test_art34_is_each_controllers_decision_recorded_from_its_portal(rt: Runtime) -> None:
    medical, plumber = make_account(rt), make_account(rt, "plomberie-durand")
    reference = _notified(rt, medical.id)
    # The provider cannot decide for the client.
    with pytest.raises(PermissionDenied), rt.db.session(DPO) as s:
        controller.record_subjects_decision(s, reference, "not_required", "no_high_risk")
    # Another client cannot see or decide on a breach that was not notified to it.
    with pytest.raises(NotFound), rt.db.session(_client(plumber.id)) as s:
        controller.record_subjects_decision(s, reference, "communicate")
    with rt.db.session(_client(medical.id)) as s:
        with pytest.raises(ValidationFailed) as refused:
            controller.record_subjects_decision(s, reference, "not_required")
        assert refused.value.key == "reason_needed"  # type: ignore[attr-defined]
        controller.record_subjects_decision(s, reference, "communicate")
        draft = controller.subjects_draft(s, reference)
    assert draft.text.startswith("Madame, Monsieur")
    assert "Cabinet du Dr Claire Lefèvre" in draft.subject
    with rt.db.session(DPO) as s:
        view = breaches.breach_view(s, breaches.breach_by_reference(s, reference).id)
        [impact] = view.accounts
        html = breaches.export_html(s)
    assert impact.subjects_decision == "communicate"
    assert "le client informe les personnes concernées" in html


def test_art34_3_a_encrypted_exception_not_for_a_compromised_operator_account(
    rt: Runtime,
) -> None:
    account = make_account(rt)
    caller = make_caller(rt, account.id)
    t1 = _tick()
    with rt.db.session(ctx_for(account.id, actor_id=OPERATOR_ID, reason="call:x")) as s:
        subjects.identity(s, rt.keyring, subjects.get(s, caller))
    t2 = _tick()
    with rt.db.session(DPO) as s:
        b = breaches.open_breach(s, aware_at=utcnow(), nature=NATURE)
        breaches.scope_to_actor(s, b.id, actor_id=OPERATOR_ID, start=t1, end=t2)
        # The desk cannot call data unintelligible that a signed-in account saw decrypted.
        with pytest.raises(ValidationFailed) as refused:
            breaches.update_contents(s, b.id, unintelligible=True)
        assert refused.value.key == "not_unintelligible"  # type: ignore[attr-defined]
        _complete(s, b.id)
        breaches.notify_controllers(s, b.id, mailer=None, portal_url=PORTAL)
        reference = b.reference
    with rt.db.session(_client(account.id)) as s:
        with pytest.raises(ValidationFailed) as refused:
            controller.record_subjects_decision(s, reference, "not_required", "encrypted")
        assert refused.value.key == "encrypted_not_open"  # type: ignore[attr-defined]
    # A stolen encrypted backup whose key stayed safe: the exception is open to the client.
    with rt.db.session(DPO) as s:
        b2 = breaches.open_breach(s, aware_at=utcnow(), nature="Vol d'un disque de sauvegarde")
        breaches.add_account(s, b2.id, account.id, subjects=40, records=100)
        breaches.update_contents(s, b2.id, unintelligible=True)
        _complete(s, b2.id)
        breaches.notify_controllers(s, b2.id, mailer=None, portal_url=PORTAL)
        other = b2.reference
    with rt.db.session(_client(account.id)) as s:
        found = controller.record_subjects_decision(s, other, "not_required", "encrypted")
    assert found.impact.subjects_reason == "encrypted"


def test_art33_each_client_gets_a_prefilled_cnil_notification_within_its_own_72_hours(
    rt: Runtime,
) -> None:
    rt.settings.provider_address = "12 rue de la Paix, 75002 Paris"
    account = make_account(rt)
    reference = _notified(rt, account.id, complete=False)
    with rt.db.session(_client(account.id)) as s:
        found = controller.notified_breach(s, reference)
        sections = controller.cnil_form(s, rt.settings, reference)
    fields = {f.label: f for section in sections for f in section.fields}
    assert [sec.title for sec in sections][:2] == [
        "Type de notification",
        "Organisme (responsable du traitement)",
    ]
    assert fields["Notification"].value.startswith("initiale, à compléter")
    assert fields["Nom ou raison sociale"].value.startswith("Cabinet du Dr Claire Lefèvre")
    assert fields["Numéro SIREN"].to_complete
    assert "12 rue de la Paix" in fields["Identité et coordonnées du sous-traitant"].value
    assert fields["Description des circonstances"].value == NATURE
    assert fields["Nombre approximatif de personnes"].value == "12"
    assert fields["Conséquences pour les personnes"].to_complete  # not described yet
    assert fields["Personnes informées"].to_complete  # the client has not decided
    # Its own 72 hours run from our first notice to it, not from our awareness.
    assert found.cnil_due == found.impact.notified_at + dt.timedelta(hours=72)  # type: ignore[operator]


def test_art33_5_register_and_notices_read_french_without_codes(rt: Runtime) -> None:
    account = make_account(rt)
    reference = _notified(rt, account.id)
    with rt.db.session(_client(account.id)) as s:
        controller.record_subjects_decision(s, reference, "not_required", "no_high_risk")
        [notice] = s.scalars(select(BreachNotice)).all()  # its own, under row-level security
    with rt.db.session(DPO) as s:
        html = breaches.export_html(s)
    for code in ("not_required", "no_high_risk", ">met<", "(met)", "running", "pending", "notify"):
        assert code not in html, code
    assert "respectée" in html and "pas de risque élevé pour les personnes" in html
    assert "ouverte" in html
    assert "Nous ne prenons pas cette décision à votre place" in notice.body
