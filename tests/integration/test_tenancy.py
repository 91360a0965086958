"""Tenant isolation: object-level checks everywhere, row-level security on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import create_engine, pool, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from permanence.db import account_owned_tables
from permanence.delivery import webhook_secrets as delivery
from permanence.messages import service as messages
from permanence.runtime import Runtime
from tests.conftest import PG_URL
from tests.factories import ctx_for, make_account, make_caller

pg_only = pytest.mark.skipif(not PG_URL, reason="row-level security is PostgreSQL's")


def _populate(rt: Runtime, slug: str, phone: str) -> str:
    from permanence.calls import service as calls

    account = make_account(rt, slug)
    make_caller(rt, account.id, phone=phone)
    from permanence.context import AccessContext, Role
    from permanence.staff.auth import create_api_key

    client = AccessContext(Role.CLIENT, "test", actor_id=account.id, account_id=account.id)
    with rt.db.session(client) as s:  # api_keys is account-owned too (migration 0074)
        create_api_key(s, account.id, name="crm", scopes=["messages:read"])
    dids = {"cabinet-lefevre": "+33478000001", "plomberie-durand": "+33240000001"}
    with rt.db.session(ctx_for(account.id)) as s:
        opened = calls.open_call(s, rt.keyring, dialled=dids[slug], caller_number=phone)
        calls.answer(s, opened.call)  # an answered call: its answer time is aggregated too
        purpose = opened.mandate.purpose("appointment")
        values = {
            "last_name": "Martin",
            "first_name": "Camille",
            "phone": phone,
            "new_patient": True,
            "preferred_slot": "2030-01-07T09:00:00+01:00",
            "address": "1 rue A, 44000 Nantes",
        }
        values = {f.name: values[f.name] for f in purpose.resolved_fields if f.name in values}
        start = dt.datetime(2030, 1, 7, 8, tzinfo=dt.UTC)
        messages.book_appointment(
            s,
            rt.keyring,
            caller_id=opened.caller.id,
            purpose=purpose.code,
            starts_at=start,
            ends_at=start + dt.timedelta(minutes=30),
            values=values,
            call_id=opened.call.id,
        )
        if slug == "cabinet-lefevre":
            messages.take_message(
                s,
                rt.keyring,
                caller_id=opened.caller.id,
                purpose="message",
                values={"last_name": "Martin", "phone": phone, "note": "Rappeler"},
                call_id=opened.call.id,
            )
        else:
            from permanence.consents import service as consents

            consents.give(
                s,
                call_id=opened.call.id,
                purpose="satisfaction",
                wording_version="2025-1",
                channel="voice",
            )
            messages.take_message(
                s,
                rt.keyring,
                caller_id=opened.caller.id,
                purpose="intervention",
                values={
                    "last_name": "Martin",
                    "phone": phone,
                    "address": "1 rue A, 44000 Nantes",
                    "urgency": "à planifier",
                    "description": "Fuite",
                },
                call_id=opened.call.id,
            )
        _governance_rows(s, account.id, opened.caller.id)
        # Telephony and retention rows (issue 6): a stored recording and a legal hold.
        from permanence.recordings.model import Recording
        from permanence.retention.model import LegalHold

        rec_id = uuid.uuid4()
        s.add(
            Recording(
                id=rec_id,
                account_id=account.id,
                call_id=opened.call.id,
                caller_id=opened.caller.id,
                mandate_id=opened.call.mandate_id,
                provider_sid=f"RE{rec_id.hex}",
                storage_key=f"{account.id}/{rec_id}.pmr",
            )
        )
        s.add(LegalHold(account_id=account.id, caller_id=opened.caller.id, reason="litigation"))
        # Its audio in the database recordings store (migration 0094, ADR 0036).
        from permanence.filestore_db import StoredFile, StoredFileChunk

        file_id = uuid.uuid4()
        s.add(
            StoredFile(
                id=file_id,
                account_id=account.id,
                key=f"{account.id}/{rec_id}.pmr",
                size=3,
                chunks=1,
            )
        )
        s.flush()
        s.add(StoredFileChunk(file_id=file_id, seq=0, account_id=account.id, data=b"PMR"))
        from permanence.evaluations.model import Evaluation
        from permanence.recordings.model import RecordingDownload
        from tests.factories import OPERATOR_ID

        s.add(
            Evaluation(
                account_id=account.id,
                call_id=opened.call.id,
                mandate_id=opened.call.mandate_id,
                operator_id=OPERATOR_ID,
                evaluator_id=OPERATOR_ID,
                greeting=2,
                identification=2,
                accuracy=2,
                courtesy=2,
                instructions=1,
            )
        )

        s.add(
            RecordingDownload(
                account_id=account.id,
                call_id=opened.call.id,
                kind="call",
                provider_sid=f"RE{uuid.uuid4().hex}",
                url="https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE0",
            )
        )
        delivery.set_webhook_secret(s, rt.keyring, "env:CLIENT_WEBHOOK_SECRET")
    return str(account.id)


def _governance_rows(s: Session, account_id: uuid.UUID, caller_id: uuid.UUID) -> None:
    """One row in each governance table the account owns (breach, contract, notices…)."""
    from permanence.breaches.model import Breach, BreachAccount, BreachNotice, BreachSubject
    from permanence.contracts.model import (
        Contract,
        ContractDocument,
        OffboardingCertificate,
        SubProcessor,
        SubProcessorChange,
        SubProcessorDeletion,
        SubProcessorNotice,
    )
    from permanence.dpia.model import Dpia
    from permanence.needtoknow.model import BreakGlassAccess, OperatorAssignment
    from tests.factories import OPERATOR_ID

    now = dt.datetime.now(dt.UTC)
    breach = Breach(id=uuid.uuid4(), reference=f"V-T-{account_id.hex[:8]}", aware_at=now)
    sp = SubProcessor(
        id=uuid.uuid4(), code=account_id.hex, name="S", service="s", country="FR", safeguard="eea"
    )
    s.add_all([breach, sp])
    s.flush()
    change = SubProcessorChange(
        id=uuid.uuid4(), subprocessor_id=sp.id, kind="add", announced_at=now, effective_at=now
    )
    contract = Contract(
        id=uuid.uuid4(), account_id=account_id, version=1, reference="R", effective_from=now
    )
    s.add_all([change, contract])
    s.flush()
    s.add_all(
        [
            BreachAccount(breach_id=breach.id, account_id=account_id),
            BreachSubject(breach_id=breach.id, account_id=account_id, subject_id=caller_id),
            BreachNotice(
                breach_id=breach.id, account_id=account_id, phase=1, subject_line="x", body="x"
            ),
            contract,
            ContractDocument(
                account_id=account_id,
                contract_id=contract.id,
                pdf=b"%PDF-",
                sha256="0" * 64,
                signed_at=now,
                signatories="[]",
                source="generated",
            ),
            SubProcessorNotice(change_id=change.id, account_id=account_id),
            OffboardingCertificate(
                account_id=account_id, document="{}", signature="x", public_key="x"
            ),
            Dpia(
                account_id=account_id,
                processing="health",
                version=1,
                mandate_version=1,
                content="{}",
            ),
            OperatorAssignment(account_id=account_id, user_id=OPERATOR_ID),
            BreakGlassAccess(
                account_id=account_id, user_id=OPERATOR_ID, caller_id=caller_id, reason="r"
            ),
            SubProcessorDeletion(account_id=account_id, subprocessor_id=sp.id),
        ]
    )
    _rights_rows(s, account_id, caller_id, now)


def _rights_rows(s: Session, account_id: uuid.UUID, caller_id: uuid.UUID, now: dt.datetime) -> None:
    """One row in each rights table (requests, rectifications, downloads, erasure journal)."""
    from permanence.rights.model import (
        CallerCode,
        Download,
        ErasureJournal,
        Rectification,
        RightsLetter,
        RightsRequest,
    )

    req = RightsRequest(
        id=uuid.uuid4(),
        account_id=account_id,
        kind="access",
        source="client",
        subject_id=caller_id,
        first_due_at=now,
        due_at=now,
    )
    s.add(req)
    s.flush()
    s.add_all(
        [
            Rectification(
                account_id=account_id,
                caller_id=caller_id,
                request_id=req.id,
                record_kind="caller",
                record_id=caller_id,
                changed_sealed=b"x",
            ),
            Download(
                token_hash=uuid.uuid4().hex,
                account_id=account_id,
                request_id=req.id,
                subject_id=caller_id,
                purpose="access_package",
                filename="a.zip",
                storage_key="k",
                expires_at=now,
            ),
            ErasureJournal(account_id=account_id, subject_id=uuid.uuid4(), request_id=req.id),
            RightsLetter(
                account_id=account_id,
                request_id=req.id,
                kind="acknowledgement",
                channel="letter",
                status="to_post",
                text_sealed=b"x",
            ),
            CallerCode(
                token_hash=uuid.uuid4().hex,
                account_id=account_id,
                kind="access",
                code_hash="x",
                expires_at=now,
            ),
        ]
    )


@pg_only
def test_raw_select_sees_only_the_account_that_is_set(rt: Runtime) -> None:
    a = _populate(rt, "cabinet-lefevre", "01 99 00 12 34")
    b = _populate(rt, "plomberie-durand", "01 99 00 55 66")
    assert PG_URL
    engine = create_engine(PG_URL, poolclass=pool.NullPool)  # the application role
    tables = account_owned_tables()
    assert {"callers", "messages", "appointments", "calls", "subject_keys", "mandates"} <= set(
        tables
    )
    try:
        with engine.connect() as conn:
            flags = dict(
                conn.execute(
                    text(
                        "SELECT relname, relrowsecurity AND relforcerowsecurity FROM pg_class "
                        "WHERE relname = ANY(:t)"
                    ),
                    {"t": tables},
                ).all()
            )
            assert flags == dict.fromkeys(tables, True)
            conn.commit()
            for table in tables:
                with conn.begin():
                    conn.execute(text("SELECT set_config('app.account_id', :a, true)"), {"a": b})
                    assert conn.scalar(text(f"SELECT count(*) FROM {table}")) > 0, table
                with conn.begin():
                    conn.execute(text("SELECT set_config('app.account_id', :a, true)"), {"a": a})
                    assert (
                        conn.scalar(
                            text(f"SELECT count(*) FROM {table} WHERE account_id = :b"), {"b": b}
                        )
                        == 0
                    )
                    assert (
                        conn.scalar(
                            text(f"SELECT count(*) FROM {table} WHERE account_id <> :a"), {"a": a}
                        )
                        == 0
                    )
                with conn.begin():
                    assert conn.scalar(text(f"SELECT count(*) FROM {table}")) == 0, (
                        f"{table} fails open"
                    )
    finally:
        engine.dispose()


@pg_only
def test_application_role_cannot_write_another_account_or_rewrite_the_log(rt: Runtime) -> None:
    a = _populate(rt, "cabinet-lefevre", "01 99 00 12 34")
    b = _populate(rt, "plomberie-durand", "01 99 00 55 66")
    assert PG_URL
    engine = create_engine(PG_URL, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            with pytest.raises(DBAPIError, match="row-level security"), conn.begin():
                conn.execute(text("SELECT set_config('app.account_id', :a, true)"), {"a": a})
                conn.execute(
                    text(
                        "INSERT INTO dids (id, account_id, e164, label, created_at) "
                        "VALUES (gen_random_uuid(), :b, '+33100000000', '', now())"
                    ),
                    {"b": b},
                )
            with conn.begin():
                conn.execute(text("SELECT set_config('app.account_id', :a, true)"), {"a": a})
                moved = conn.execute(
                    text("UPDATE callers SET account_id = :a WHERE account_id = :b"),
                    {"a": a, "b": b},
                )
                assert moved.rowcount == 0
            for sql in (
                "UPDATE audit_log SET body = 'x'",
                "DELETE FROM audit_log",
                "TRUNCATE audit_log",
            ):
                with pytest.raises(DBAPIError, match="permission denied"), conn.begin():
                    conn.execute(text(sql))
    finally:
        engine.dispose()


def test_services_refuse_another_accounts_objects(rt: Runtime) -> None:
    """The first line of defence, on every backend: object-level checks in the services."""
    from permanence.calls import service as calls
    from permanence.errors import NotFound
    from permanence.messages.model import Message

    a = uuid.UUID(_populate(rt, "cabinet-lefevre", "01 99 00 12 34"))
    b = uuid.UUID(_populate(rt, "plomberie-durand", "01 99 00 55 66"))
    with rt.db.session(ctx_for(b), readonly=True) as s:
        b_message = s.scalars(select(Message).where(Message.account_id == b)).one()
        msg_id, call_id = b_message.id, b_message.call_id
    assert call_id is not None
    with rt.db.session(ctx_for(a)) as s:
        with pytest.raises(NotFound):
            messages.get_message(s, msg_id)
        with pytest.raises(NotFound):
            calls.get_call(s, call_id)
        with pytest.raises(NotFound):
            calls.open_call(s, rt.keyring, dialled="+33240000001", caller_number="0199001234")


def test_reads_by_caller_id_check_the_callers_account_first(rt: Runtime) -> None:
    """Reads and deletes by caller id alone (the caller's index, docs/performance.md) come only
    after the caller is known to be of the account: another account's caller is a 404, and an
    erasure naming it (a journal replayed under the wrong account) touches nothing of theirs."""
    from permanence.accounts.service import mandate_by_id
    from permanence.calls.model import Call
    from permanence.consents import service as consents
    from permanence.context import AccessContext
    from permanence.errors import NotFound
    from permanence.messages.model import Message
    from permanence.rights.erasure import erase_subject
    from permanence.rights.restriction import _restrict
    from permanence.subjects.model import Caller
    from permanence.web.pages import console_desk
    from tests.factories import caller_with_records

    a = make_account(rt, "cabinet-lefevre").id
    b = make_account(rt, "plomberie-durand").id
    theirs = caller_with_records(
        rt, b, first="Camille", last="Martin", phone="0199005566", email="camille@exemple.fr"
    )
    with rt.db.session(ctx_for(b), readonly=True) as s:
        caller = s.get(Caller, theirs.caller_id)
        call = s.get(Call, theirs.call_id)
        assert caller is not None and call is not None
        mandate = mandate_by_id(s, call.mandate_id)[1]
        s.expunge_all()
    with rt.db.session(ctx_for(a)) as s:
        with pytest.raises(NotFound):
            consents.of_caller(s, theirs.caller_id)
        with pytest.raises(NotFound):
            _restrict(s, caller, dt.datetime.now(dt.UTC))
        mine = Call(id=uuid.uuid4(), account_id=a, caller_id=theirs.caller_id)
        with pytest.raises(NotFound):
            console_desk.caller_history(s, mine, mandate, "follow_up")
    with rt.db.session(AccessContext.system("test", a)) as s:
        erased = erase_subject(s, rt.keyring, a, theirs.caller_id)
        assert not any(erased.counts.values()) and not erased.caller_deleted, erased
    with rt.db.session(ctx_for(b), readonly=True) as s:
        assert s.get(Message, theirs.message_id) is not None
        assert s.get(Call, theirs.call_id) is not None
        assert s.get(Caller, theirs.caller_id) is not None
