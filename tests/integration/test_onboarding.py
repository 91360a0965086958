"""Onboarding staff (service and command line): a training session recorded for several
staff members with its encrypted attestation, the refusals, the undertaking, and the gate
that opens once both are there."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from permanence.audit.model import AuditEntry
from permanence.calls import service as calls
from permanence.context import AccessContext, Role
from permanence.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    UnsupportedMediaType,
    ValidationFailed,
)
from permanence.runtime import Runtime
from permanence.staff import attestations, onboarding, training, undertaking
from permanence.staff.model import (
    ConfidentialityUndertaking,
    TrainingAttestation,
    TrainingRecord,
)
from permanence.staff.service import create_user
from tests.conftest import PG_URL, cli_env, run_cli
from tests.factories import ctx_for, make_account

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\nattestation de presence signee\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
DPO_CTX = AccessContext(role=Role.DPO, actor_id=uuid.uuid4(), reason="test")


def _staff(rt: Runtime, role: Role = Role.OPERATOR, email: str | None = None) -> uuid.UUID:
    account_id = make_account(rt).id if role is Role.CLIENT else None
    with rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        new = create_user(
            s,
            rt.keyring,
            email=email or f"{uuid.uuid4().hex[:10]}@permanence.example",
            display_name="Nouvelle recrue",
            role=role,
            password="un mot de passe de test",
            account_id=account_id,
        )
        return new.user.id


def _record(rt: Runtime, ctx: AccessContext = DPO_CTX, **kw: object) -> list[TrainingRecord]:
    args: dict[str, object] = {
        "course": training.REQUIRED_COURSE,
        "completed_on": onboarding.paris_today(),
    }
    args.update(kw)
    with rt.db.session(ctx) as s:
        return onboarding.record_session(
            s,
            rt.keyring,
            attestations.store_for(rt.settings),
            **args,  # type: ignore[arg-type]
        )


def test_a_session_for_two_people_shares_one_encrypted_attestation(rt: Runtime) -> None:
    a, b = _staff(rt), _staff(rt, Role.SUPERVISOR)
    day = onboarding.paris_today() - dt.timedelta(days=3)
    rows = _record(
        rt,
        user_ids=[a, b],
        completed_on=day,
        trainer="Cabinet Conseil RGPD",
        duration_minutes=180,
        attestation=PDF,
    )
    assert {r.user_id for r in rows} == {a, b}
    with rt.db.session(DPO_CTX, readonly=True) as s:
        records = s.scalars(select(TrainingRecord).where(TrainingRecord.user_id.in_([a, b])))
        got = list(records)
        assert {r.trainer for r in got} == {"Cabinet Conseil RGPD"}
        assert {r.duration_minutes for r in got} == {180}
        (att_id,) = {r.attestation_id for r in got}
        assert att_id is not None
        # The completion is that French day; valid for the module's period.
        assert all(r.completed_at.astimezone(onboarding.PARIS).date() == day for r in got)
        assert all(r.expires_at - r.completed_at == dt.timedelta(days=365) for r in got)
        att = s.get(TrainingAttestation, att_id)
        assert att is not None and att.content_type == "application/pdf"
        actions = [e.action for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()]
    assert actions.count("staff.training_recorded") == 2
    with rt.db.session(DPO_CTX, readonly=True) as s:  # ids and codes, never the trainer
        bodies = " ".join(e.body for e in s.scalars(select(AuditEntry)))
    assert "Cabinet Conseil" not in bodies and "Nouvelle recrue" not in bodies
    assert "staff.attestation_stored" in actions
    # On disk: ciphertext only.
    stored = rt.settings.data_dir / "training" / att.storage_key
    raw = stored.read_bytes()
    assert raw.startswith(b"PMR1") and b"attestation de presence" not in raw
    # The DPO reads it back, audited.
    with rt.db.session(DPO_CTX) as s:
        opened = attestations.open_attestation(
            s, rt.keyring, attestations.store_for(rt.settings), att_id
        )
        assert b"".join(opened.chunks) == PDF
        assert opened.filename.endswith(".pdf")
        assert s.scalars(
            select(AuditEntry).where(AuditEntry.action == "staff.attestation_read")
        ).first()
    # Nobody else does, an administrator included.
    with (
        pytest.raises(PermissionDenied),
        rt.db.session(AccessContext(role=Role.ADMIN, actor_id=uuid.uuid4(), reason="t")) as s,
    ):
        attestations.open_attestation(s, rt.keyring, attestations.store_for(rt.settings), att_id)


@pytest.mark.parametrize(
    ("kw", "error", "key"),
    [
        ({"course": "cours-inconnu"}, ValidationFailed, "course"),
        ({"completed_on": dt.date(2999, 1, 1)}, ValidationFailed, "future"),
        ({"completed_on": dt.date(2001, 1, 1)}, ValidationFailed, "old"),
        ({"duration_minutes": 0}, ValidationFailed, "duration"),
        ({"trainer": "x" * 201}, ValidationFailed, "trainer"),
        ({"user_ids": []}, ValidationFailed, "people"),
        ({"attestation": b"GIF89a not accepted"}, UnsupportedMediaType, None),
        ({"attestation": b"%PDF-" + b"0" * (512 * 1024)}, PayloadTooLarge, None),
        ({"attestation": b""}, ValidationFailed, None),
    ],
)
def test_refusals_write_nothing(
    rt: Runtime, kw: dict[str, object], error: type[Exception], key: str | None
) -> None:
    op = _staff(rt)
    args: dict[str, object] = {"user_ids": [op]}
    args.update(kw)
    with pytest.raises(error) as caught:
        _record(rt, **args)
    if key is not None:
        assert getattr(caught.value, "key", None) == key
    with rt.db.session(DPO_CTX, readonly=True) as s:
        assert s.scalars(select(TrainingRecord)).first() is None
        assert s.scalars(select(TrainingAttestation)).first() is None
    assert not list((rt.settings.data_dir / "training").glob("*/*"))


def test_unknown_people_clients_and_other_roles_are_refused(rt: Runtime) -> None:
    op, client = _staff(rt), _staff(rt, Role.CLIENT)
    with pytest.raises(NotFound):
        _record(rt, user_ids=[op, uuid.uuid4()])
    with pytest.raises(ValidationFailed, match="only active staff"):
        _record(rt, user_ids=[client])
    for role in (Role.OPERATOR, Role.SUPERVISOR, Role.CLIENT):
        ctx = AccessContext(role=role, actor_id=op, reason="test")
        with pytest.raises(PermissionDenied):
            _record(rt, ctx, user_ids=[op])


def test_a_failed_transaction_leaves_no_attestation_file(rt: Runtime) -> None:
    op = _staff(rt)
    with pytest.raises(RuntimeError), rt.db.session(DPO_CTX) as s:
        onboarding.record_session(
            s,
            rt.keyring,
            attestations.store_for(rt.settings),
            user_ids=[op],
            course=training.REQUIRED_COURSE,
            completed_on=onboarding.paris_today(),
            attestation=PNG,
        )
        assert len(list((rt.settings.data_dir / "training").glob("*/*.pmr"))) == 1
        raise RuntimeError("the commit never happens")
    assert not list((rt.settings.data_dir / "training").glob("*/*"))


def test_the_undertaking_then_the_training_open_the_gate(rt: Runtime) -> None:
    account = make_account(rt)
    op = _staff(rt)
    me = AccessContext(role=Role.OPERATOR, actor_id=op, reason="test")
    _record(rt, user_ids=[op])
    with (
        pytest.raises(training.TrainingRequired) as refused,
        rt.db.session(ctx_for(account.id, actor_id=op)) as s,
    ):
        calls.open_call(s, rt.keyring, dialled="+33478000001", caller_number=None)
    assert refused.value.undertaking is True
    with pytest.raises(Conflict), rt.db.session(me) as s:
        onboarding.sign_current(s, "2020-0")
    with rt.db.session(me) as s:
        first = onboarding.sign_current(s, training.UNDERTAKING_VERSION).signed_at
    with rt.db.session(me) as s:  # twice: the first signature stays
        assert onboarding.sign_current(s, training.UNDERTAKING_VERSION).signed_at == first
    with rt.db.session(ctx_for(account.id, actor_id=op)) as s:
        calls.open_call(s, rt.keyring, dialled="+33478000001", caller_number=None)
    with rt.db.session(DPO_CTX, readonly=True) as s:
        (row,) = [r for r in onboarding.board(s) if r.user_id == op]
        assert row.cleared and row.status == "valid"
        assert row.undertaking is not None and row.undertaking.version == "2026-1"
        signed = s.scalars(
            select(ConfidentialityUndertaking).where(ConfidentialityUndertaking.user_id == op)
        ).all()
        assert len(signed) == 1
        audited = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "staff.undertaking_signed")
        ).all()
        assert any(str(op) in e.body for e in audited)
    with pytest.raises(PermissionDenied), rt.db.session(AccessContext.system("x")) as s:
        onboarding.sign_current(s, training.UNDERTAKING_VERSION)


def test_the_board_says_who_expires_soon_and_renewal_clears_it(rt: Runtime) -> None:
    op = _staff(rt)
    today = onboarding.paris_today()
    _record(rt, user_ids=[op], completed_on=today - dt.timedelta(days=350))
    with rt.db.session(DPO_CTX, readonly=True) as s:
        (row,) = [r for r in onboarding.board(s) if r.user_id == op]
        assert row.status == "soon"
        assert [d.user_id for d in training.expiring(s, 30)] == [op]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=20)
    with rt.db.session(DPO_CTX, readonly=True) as s:
        (row,) = [r for r in onboarding.board(s, later) if r.user_id == op]
        assert row.status == "expired"
    _record(rt, user_ids=[op])  # the renewal
    with rt.db.session(DPO_CTX, readonly=True) as s:
        (row,) = [r for r in onboarding.board(s) if r.user_id == op]
        assert row.status == "valid"
        assert training.expiring(s, 30) == []


def test_the_undertaking_exists_in_french_and_english() -> None:
    fr, en = undertaking.text("fr"), undertaking.text("en")
    assert len(fr) == len(en) >= 4
    assert "confidentielles" in " ".join(fr) and "confidential" in " ".join(en)
    assert undertaking.text("de") == fr


def test_the_command_records_training(rt: Runtime, tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    a = _staff(rt, email="nouvelle.operatrice@permanence.example")
    b = _staff(rt, email="nouvel.operateur@permanence.example")
    env = cli_env(rt.settings)
    sheet = tmp_path / "feuille.pdf"
    sheet.write_bytes(PDF)
    day = (onboarding.paris_today() - dt.timedelta(days=1)).isoformat()
    done = run_cli(
        env,
        "staff",
        "train",
        "--email",
        "nouvelle.operatrice@permanence.example",
        "--email",
        "NOUVEL.operateur@permanence.example",
        "--module",
        training.REQUIRED_COURSE,
        "--completed-on",
        day,
        "--trainer",
        "Formatrice interne",
        "--duration-minutes",
        "90",
        "--attestation",
        str(sheet),
    )
    assert done.returncode == 0, done.stderr
    assert "2 training record(s) written" in done.stdout
    assert "nouvelle.operatrice" not in done.stdout + done.stderr  # ids, not e-mails
    with rt.db.session(DPO_CTX, readonly=True) as s:
        got = s.scalars(select(TrainingRecord).where(TrainingRecord.user_id.in_([a, b]))).all()
        assert len(got) == 2 and {r.duration_minutes for r in got} == {90}
        assert len({r.attestation_id for r in got} - {None}) == 1

    def refused(*args: str) -> str:
        proc = run_cli(env, "staff", "train", *args)
        assert proc.returncode != 0 and proc.stdout == ""
        assert proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1
        return proc.stderr

    base = ["--email", "nouvelle.operatrice@permanence.example"]
    assert "unknown training module" in refused(*base, "--module", "inconnu", "--completed-on", day)
    assert "in the future" in refused(
        *base, "--module", training.REQUIRED_COURSE, "--completed-on", "2999-01-01"
    )
    assert "YYYY-MM-DD" in refused(
        *base, "--module", training.REQUIRED_COURSE, "--completed-on", "demain"
    )
    err = refused(
        "--email",
        "personne@nulle-part.example",
        "--module",
        "rgpd-fondamentaux",
        "--completed-on",
        day,
    )
    assert "no user" in err and "personne@" not in err
    bad = tmp_path / "photo.gif"
    bad.write_bytes(b"GIF89a")
    assert "PDF, PNG or JPEG" in refused(
        *base,
        "--module",
        training.REQUIRED_COURSE,
        "--completed-on",
        day,
        "--attestation",
        str(bad),
    )


def test_attestations_are_backed_up_and_restored(rt: Runtime, tmp_path: object) -> None:
    from pathlib import Path

    from tests.integration.test_backup import BACKUP_KEY, lose_everything

    assert isinstance(tmp_path, Path)
    op = _staff(rt)
    (row,) = _record(rt, user_ids=[op], attestation=PDF)
    att_id = row.attestation_id
    assert att_id is not None
    env = {**cli_env(rt.settings), "PERMANENCE_BACKUP_KEY": BACKUP_KEY}
    archive = tmp_path / "sauvegarde.pmbk"
    done = run_cli(env, "backup", str(archive))
    assert done.returncode == 0, done.stderr
    rt.close()
    lose_everything(rt.settings)
    training_dir = rt.settings.data_dir / "training"
    for p in sorted(training_dir.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    restored = run_cli(env, "restore", str(archive), "--no-erasure-since")
    assert restored.returncode == 0, restored.stderr
    again = Runtime.from_settings(rt.settings)
    try:
        with again.db.session(DPO_CTX) as s:
            opened = attestations.open_attestation(
                s, again.keyring, attestations.store_for(again.settings), att_id
            )
            assert b"".join(opened.chunks) == PDF
    finally:
        again.close()


def test_migration_0071_upgrades_and_downgrades_keeping_the_completions(rt: Runtime) -> None:
    """Completions recorded before 0071 keep their rows (trainer, duration and attestation
    empty); a downgrade drops the new columns and table and keeps the completions."""
    import sqlalchemy as sa
    from alembic import command
    from sqlalchemy import create_engine, inspect, pool

    from permanence import schema
    from tests.integration.test_backup import lose_everything

    settings = rt.settings
    rt.close()
    lose_everything(settings)
    url = settings.effective_migration_url
    cfg = schema.alembic_config(url)
    command.upgrade(cfg, "0070")
    user, record = uuid.uuid4(), uuid.uuid4()
    at = dt.datetime(2026, 3, 2, 11, tzinfo=dt.UTC)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO users (id, email, display_name, role, password_hash, "
                    "mfa_enabled, password_changed_at, active, created_at) VALUES "
                    "(:id, 'a@p.example', 'A', 'operator', '!', false, :at, true, :at)"
                ),
                {"id": user.hex if not PG_URL else user, "at": at.replace(tzinfo=None)},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO staff_training (id, user_id, course, completed_at, expires_at)"
                    " VALUES (:id, :u, 'rgpd-fondamentaux', :at, :at)"
                ),
                {
                    "id": record.hex if not PG_URL else record,
                    "u": user.hex if not PG_URL else user,
                    "at": at.replace(tzinfo=None),
                },
            )
        command.upgrade(cfg, "0071")
        with engine.begin() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("staff_training")}
            assert {"trainer", "duration_minutes", "attestation_id"} <= columns
            assert "training_attestations" in inspect(conn).get_table_names()
            row = conn.execute(
                sa.text("SELECT trainer, duration_minutes, attestation_id FROM staff_training")
            ).one()
            assert tuple(row) == (None, None, None)
        command.downgrade(cfg, "0070")
        with engine.begin() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("staff_training")}
            assert "attestation_id" not in columns and "trainer" not in columns
            assert "training_attestations" not in inspect(conn).get_table_names()
            assert conn.execute(sa.text("SELECT count(*) FROM staff_training")).scalar() == 1
        schema.upgrade(url, settings.database_app_role)
    finally:
        engine.dispose()
