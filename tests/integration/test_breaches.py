"""The breach register: scope from the audit log, contents, phased notification, clocks."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
import uuid

import pytest

from permanence.breaches import service as breaches
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.db import utcnow
from permanence.errors import Conflict, PermissionDenied, ValidationFailed
from permanence.mail import SmtpMailer
from permanence.runtime import Runtime
from permanence.staff.model import User
from permanence.staff.training import record_training, sign_undertaking
from permanence.subjects import service as subjects
from tests.conftest import SmtpSink, cli_env, run_cli
from tests.factories import ctx_for, make_account, make_caller

DPO = AccessContext(role=Role.DPO, reason="breach", actor_id=uuid.uuid4())


def _trained_operator(rt: Runtime) -> uuid.UUID:
    uid = uuid.uuid4()
    with rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        s.add(
            User(
                id=uid,
                email=f"{uid.hex}@permanence.example",
                display_name="Op",
                role=Role.OPERATOR,
                password_hash="!",
            )
        )
        s.flush()
        record_training(s, uid)
        sign_undertaking(s, uid)
    return uid


def _read(rt: Runtime, account_id: uuid.UUID, operator: uuid.UUID, caller: uuid.UUID) -> None:
    with rt.db.session(ctx_for(account_id, actor_id=operator, reason="call:x")) as s:
        subjects.identity(s, rt.keyring, subjects.get(s, caller))


def _tick() -> dt.datetime:
    """A timestamp strictly between the audit entries written before and after it."""
    time.sleep(0.01)
    t = utcnow()
    time.sleep(0.01)
    return t


def _complete(rt: Runtime, breach_id: uuid.UUID) -> None:
    with rt.db.session(DPO) as s:
        breaches.update_contents(
            s,
            breach_id,
            nature="Compte d'opérateur utilisé par un tiers après hameçonnage",
            data_categories=["identity", "contact"],
            subject_categories=["callers"],
            contact_point="dpo@permanence.example",
            consequences="Risque d'appels frauduleux se réclamant du cabinet",
            measures="Compte bloqué, mot de passe et TOTP renouvelés",
        )


def test_scope_of_a_compromised_operator_is_exactly_whose_data_they_read(rt: Runtime) -> None:
    medical, plumber = make_account(rt), make_account(rt, "plomberie-durand")
    a1 = make_caller(rt, medical.id, first="Alice", last="Dubois", phone="0199001001")
    a2 = make_caller(rt, medical.id, first="Bruno", last="Faure", phone="0199001002")
    a3 = make_caller(rt, medical.id, first="Chloé", last="Morin", phone="0199001003")
    p1 = make_caller(rt, plumber.id, first="Denis", last="Roux", phone="0199001004")
    x, y = _trained_operator(rt), _trained_operator(rt)
    _read(rt, medical.id, x, a3)  # before the window
    t1 = _tick()
    _read(rt, medical.id, x, a1)
    _read(rt, medical.id, x, a1)
    _read(rt, plumber.id, x, p1)
    _read(rt, medical.id, y, a2)  # another operator, same window
    t2 = _tick()
    _read(rt, medical.id, x, a2)  # after the window
    with rt.db.session(DPO) as s:
        b = breaches.open_breach(s, aware_at=utcnow())
        scope = breaches.scope_to_actor(s, b.id, actor_id=x, start=t1, end=t2)
        assert {(sc.account_id, sc.subject_id) for sc in scope.subjects} == {
            (medical.id, a1),
            (plumber.id, p1),
        }
        assert next(sc for sc in scope.subjects if sc.subject_id == a1).reads == 2
        view = breaches.breach_view(s, b.id)
        assert {(a.slug, a.subjects) for a in view.accounts} == {
            ("cabinet-lefevre", 1),
            ("plomberie-durand", 1),
        }
        assert (b.approx_subjects, b.approx_records) == (2, 2)
    # The client sees its own affected callers, and only those.
    with rt.db.session(ctx_for(medical.id, role=Role.CLIENT)) as s:
        assert [r.subject_id for r in breaches.affected_subjects(s, b.id)] == [a1]


def test_phased_notification_sends_the_supplement_as_phase_two(
    rt: Runtime, settings: object, smtp: SmtpSink
) -> None:
    account = make_account(rt)
    aware = utcnow() - dt.timedelta(hours=3)
    with rt.db.session(DPO) as s:
        b = breaches.open_breach(s, aware_at=aware)
        breaches.add_account(s, b.id, account.id, subjects=12, records=30)
        bid = b.id
    _complete(rt, bid)
    mailer = SmtpMailer(rt.settings)
    with rt.db.session(DPO) as s:
        sent = breaches.notify_controllers(s, bid, mailer=mailer, portal_url="https://p.example")
        assert [n.phase for n in sent] == [1]
        assert "12" in sent[0].body and "Compte bloqué" in sent[0].body
        # Nothing new: nothing sent again.
        assert breaches.notify_controllers(s, bid, mailer=mailer, portal_url="https://x") == []
    with rt.db.session(DPO) as s:
        changed = breaches.update_contents(
            s, bid, approx_subjects=15, measures="Compte bloqué ; audit des accès terminé"
        )
        assert sorted(changed) == ["approx_subjects", "measures"]
        assert breaches.get_breach(s, bid).phase == 2
        sent = breaches.notify_controllers(s, bid, mailer=mailer, portal_url="https://p.example")
        assert [n.phase for n in sent] == [2]
        assert "phase 2" in sent[0].body
        assert "mesures prises ou envisagées" in sent[0].body  # what changed is named
        view = breaches.breach_view(s, bid)
        impact = view.accounts[0]
        # The 24 h clock was met by phase 1; the controller's 72 h run from that first notice.
        assert impact.controller_clock.state(utcnow()) == "met"
        assert impact.notices == 2
        assert impact.cnil_clock.due_at == impact.notified_at + dt.timedelta(hours=72)
    with rt.db.session(ctx_for(account.id, role=Role.CLIENT)) as s:
        assert [n.phase for n in breaches.notices_for_account(s)] == [2, 1]
    # One e-mail per phase (the mandate's contact), each only a link: no breach details.
    bodies = smtp.bodies()
    assert len(bodies) == 2
    assert all("/portail/violations/" in body and "Compte bloqué" not in body for body in bodies)


@pytest.mark.gdpr("Art. 33(5)")
def test_unnotified_breach_needs_a_reason_and_then_has_no_clock(rt: Runtime) -> None:
    make_account(rt)
    long_ago = utcnow() - dt.timedelta(days=10)
    with rt.db.session(DPO) as s:
        b = breaches.open_breach(s, aware_at=long_ago, nature="E-mail envoyé au mauvais client")
        assert breaches.breach_view(s, b.id).overdue  # no decision after 72 hours
        with pytest.raises(ValidationFailed, match="reason"):
            breaches.decide(s, b.id, "not_notified")
        breaches.decide(s, b.id, "not_notified", "no_personal_data")
        assert not breaches.breach_view(s, b.id).overdue
        with pytest.raises(Conflict):
            breaches.notify_controllers(s, b.id, mailer=None, portal_url="https://p.example")
        html = breaches.export_html(s)
    assert b.reference in html and "aucune donnée à caractère personnel" in html


def test_register_text_refuses_personal_data(rt: Runtime) -> None:
    with (
        rt.db.session(DPO) as s,
        pytest.raises(ValidationFailed, match="personal data") as exc,
    ):
        breaches.open_breach(s, aware_at=utcnow(), nature="Le patient au 06 12 34 56 78 a appelé")
    assert "06 12" not in str(exc.value)


def test_only_the_dpo_desk_keeps_the_register(rt: Runtime) -> None:
    account = make_account(rt)
    with pytest.raises(PermissionDenied), rt.db.session(ctx_for(account.id)) as s:
        breaches.open_breach(s, aware_at=utcnow())


def test_drafts_are_french_and_name_the_controller(rt: Runtime) -> None:
    account = make_account(rt)
    with rt.db.session(DPO) as s:
        b = breaches.open_breach(s, aware_at=utcnow())
        breaches.add_account(s, b.id, account.id, subjects=3, records=3)
        bid = b.id
    _complete(rt, bid)
    with rt.db.session(DPO) as s:
        notice = breaches.controller_notice_draft(s, bid, account.id)
        callers = breaches.subjects_communication_draft(s, bid, account.id)
    assert "article 33(2)" in notice.text and "Cabinet du Dr Claire Lefèvre" in notice.text
    assert "72 heures" in notice.text
    assert callers.text.startswith("Madame, Monsieur")
    assert "secretariat@cabinet-lefevre.example" in callers.text  # the controller's contact
    assert "CNIL" in callers.text


def test_the_command_line_scopes_by_e_mail_through_the_service(
    rt: Runtime, settings: Settings
) -> None:
    """`breach open` then `breach scope --actor-email`: an unknown address is a clear error,
    a known one scopes (the e-mail lookup is the service's `user_by_email`)."""
    account = make_account(rt)
    caller = make_caller(rt, account.id)
    operator = _trained_operator(rt)
    t1 = _tick()
    _read(rt, account.id, operator, caller)
    t2 = _tick()
    env = cli_env(settings)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(env, "breach", *args)

    opened = run("open", "--aware-at", utcnow().isoformat(), "--nature", "Poste volé")
    assert opened.returncode == 0, opened.stderr
    reference = opened.stdout.strip()
    window = ("--from", t1.isoformat(), "--to", t2.isoformat())
    unknown = run("scope", reference, "--actor-email", "nobody@permanence.example", *window)
    assert unknown.returncode == 1 and "no user with this e-mail address" in unknown.stderr
    email = f"{operator.hex}@permanence.example"
    scoped = run("scope", reference, "--actor-email", email.upper(), *window)
    assert scoped.returncode == 0, scoped.stderr
    assert f"{reference}: 1 caller(s) in 1 account(s)" in scoped.stdout


def test_breaches_opened_at_the_same_moment_get_distinct_references(rt: Runtime) -> None:
    """Several desks opening a breach at once (threads, each its own transaction) each get the
    next number of the year, never the same one (which the unique index would turn into a 500)."""
    import threading

    barrier = threading.Barrier(4)
    references: list[str] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            barrier.wait()
            with rt.db.session(DPO) as s:
                references.append(breaches.open_breach(s, aware_at=utcnow()).reference)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(references)) == 4
