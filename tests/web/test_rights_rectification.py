"""Rectification is validated like a new record of the same purpose (mandates.forms): what
does not fit is refused with a 422 naming the field, and nothing is written."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from permanence.messages.model import Message
from permanence.rights.model import RightsRequest
from tests.conftest import SmtpSink
from tests.factories import caller_with_records, ctx_for
from tests.web.conftest import World

FIRST, LAST = "Zéphyrine", "Quenouille"
PHONE, EMAIL = "06 71 23 45 89", "zephyrine.quenouille@exemple.fr"


def _payload(world: World, message_id: uuid.UUID) -> dict[str, Any]:
    with world.rt.db.session(ctx_for(world.plumber.id)) as s:
        msg = s.get(Message, message_id)
        assert msg is not None
        cipher = world.rt.keyring.cipher(s, msg.account_id, msg.caller_id)
        out: dict[str, Any] = cipher.open_json("messages", "payload", msg.id, msg.payload_sealed)
        return out


def _requests(world: World) -> int:
    with world.rt.db.session(ctx_for(world.plumber.id)) as s:
        return s.scalar(select(func.count()).select_from(RightsRequest)) or 0


def _record_change(message_id: uuid.UUID, **fields: Any) -> dict[str, Any]:
    return {
        "kind": "rectification",
        "requester": {"phone": PHONE},
        "verified_by_controller": True,
        "changes": {"records": [{"kind": "message", "id": str(message_id), "fields": fields}]},
    }


@pytest.mark.gdpr("Art. 16", "Art. 5(1)(d)")
def test_rectification_is_checked_like_a_new_record(world: World, smtp: SmtpSink) -> None:
    made = caller_with_records(
        world.rt, world.plumber.id, first=FIRST, last=LAST, phone=PHONE, email=EMAIL
    )
    client = world.login(world.client_plumber)
    base = f"/api/v1/accounts/{world.plumber.id}/rights/requests"
    before = _payload(world, made.message_id)

    bad: list[tuple[dict[str, Any], str, str]] = [
        ({"phone": "pas un numéro"}, "phone", "pas un num"),
        ({"last_name": "N" * 5000}, "last_name", "100 characters"),
        ({"last_name": 42}, "last_name", "must be text"),
        ({"description": None}, "description", "required"),
        ({"urgency": "demain"}, "urgency", "declared choices"),
    ]
    for fields, name, said in bad:
        r = client.post(base, json=_record_change(made.message_id, **fields))
        assert r.status_code == 422, (fields, r.text)
        problems = " ".join(r.json()["problems"])
        assert f"'{name}'" in problems, problems
        if name != "phone":
            assert said in problems, problems
        else:  # the value is never echoed back: it may be personal data
            assert said not in r.text
    bad_identity: list[tuple[dict[str, Any], str]] = [
        ({"phone": "pas un numéro"}, "phone"),
        ({"email": "pas une adresse"}, "email"),
        ({"first_name": "Zé\nphyrine"}, "first_name"),
    ]
    for ident, name in bad_identity:
        body = {
            "kind": "rectification",
            "requester": {"phone": PHONE},
            "verified_by_controller": True,
            "changes": {"identity": ident},
        }
        r = client.post(base, json=body)
        assert r.status_code == 422, (ident, r.text)
        assert f"changes.identity.{name}" in " ".join(r.json()["problems"])
    # Nothing was written: no request, the record unchanged.
    assert _requests(world) == 0
    assert _payload(world, made.message_id) == before

    # What fits is stored as a new record would be: the phone in E.164, the text stripped.
    r = client.post(
        base,
        json=_record_change(made.message_id, phone="06 12 34 56 78", last_name="  Martin "),
    )
    assert r.status_code == 201, r.text
    done = client.post(f"{base}/{r.json()['id']}/execute")
    assert done.status_code == 200, done.text
    after = _payload(world, made.message_id)
    assert after["phone"] == "+33612345678" and after["last_name"] == "Martin"
    assert after["description"] == before["description"]


@pytest.mark.gdpr("Art. 12(3)", "Art. 15(3)")
def test_the_requester_and_the_client_each_have_their_own_link(
    world: World, smtp: SmtpSink
) -> None:
    import io
    import json
    import re
    import zipfile

    from permanence.audit.model import AuditEntry
    from permanence.rights.service import Outbox

    world.app.state.rights_outbox = Outbox.from_settings(world.rt.settings)  # type: ignore[attr-defined]
    made = caller_with_records(
        world.rt, world.plumber.id, first=FIRST, last=LAST, phone=PHONE, email=EMAIL
    )
    client = world.login(world.client_plumber)
    base = f"/api/v1/accounts/{world.plumber.id}/rights/requests"
    body = {"kind": "access", "requester": {"email": EMAIL}, "verified_by_controller": True}
    req = client.post(base, json=body)
    assert req.status_code == 201, req.text
    done = client.post(f"{base}/{req.json()['id']}/execute")
    assert done.status_code == 200, done.text
    clients_token = done.json()["download_url"].rsplit("/", 1)[1]
    letter = smtp.bodies()[-1]
    found = re.search(r"/api/v1/rights/downloads/([A-Za-z0-9_.-]+)", letter)
    assert found, letter
    callers_token = found.group(1)
    assert callers_token != clients_token

    # The client opens theirs first: the caller's link still works, once.
    anonymous = world.client()
    for token in (clients_token, callers_token):
        got = anonymous.get(f"/api/v1/rights/downloads/{token}")
        assert got.status_code == 200, got.text
        data = zipfile.ZipFile(io.BytesIO(got.content)).read("donnees.json").decode()
        assert LAST in data
        assert anonymous.get(f"/api/v1/rights/downloads/{token}").status_code == 409
    with world.rt.db.session(ctx_for(world.plumber.id)) as s:
        entries = s.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "rights.download", AuditEntry.subject_id == made.caller_id
            )
        ).all()
        recipients = sorted(json.loads(e.body)["details"]["recipient"] for e in entries)
    assert recipients == ["controller", "requester"]


@pytest.mark.gdpr("Art. 17", "Art. 19")
def test_erasure_closes_the_other_requests_and_unlinks_the_ledger(
    world: World, smtp: SmtpSink
) -> None:
    from permanence.delivery.model import Delivery
    from permanence.rights.service import Outbox

    world.app.state.rights_outbox = Outbox.from_settings(world.rt.settings)  # type: ignore[attr-defined]
    made = caller_with_records(
        world.rt, world.plumber.id, first=FIRST, last=LAST, phone=PHONE, email=EMAIL
    )
    client = world.login(world.client_plumber)
    base = f"/api/v1/accounts/{world.plumber.id}/rights/requests"
    # An access request waiting for the code, and a restriction vouched for, still open.
    pending = client.post(base, json={"kind": "access", "requester": {"email": EMAIL}}).json()
    assert client.post(f"{base}/{pending['id']}/verification", json={"method": "email_code"})
    vouched = client.post(
        base,
        json={"kind": "restriction", "requester": {"phone": PHONE}, "verified_by_controller": True},
    ).json()
    with world.rt.db.session(ctx_for(world.plumber.id)) as s:
        linked = s.scalars(select(Delivery).where(Delivery.message_id == made.message_id)).all()
        assert linked and all(d.subject_id == made.caller_id for d in linked)
    erasure = client.post(
        base,
        json={"kind": "erasure", "requester": {"phone": PHONE}, "verified_by_controller": True},
    ).json()
    done = client.post(f"{base}/{erasure['id']}/execute")
    assert done.status_code == 200, done.text
    cert = done.json()["certificate"]["certificate"]
    assert cert["other_requests_closed"] == 2 and cert["ledger_rows_unlinked"] >= len(linked)

    for other in (pending, vouched):
        got = client.get(f"{base}/{other['id']}").json()
        assert got["state"] == "cancelled", got
        assert client.post(f"{base}/{other['id']}/execute").status_code == 409
    with world.rt.db.session(ctx_for(world.plumber.id)) as s:
        closed = s.get(RightsRequest, uuid.UUID(pending["id"]))
        assert closed is not None and closed.outcome is not None
        assert '"closed": "subject_erased"' in closed.outcome and closed.code_hash is None
        # The erasure notices are queued for the recipients, and no ledger row says about whom.
        rows = s.scalars(select(Delivery).where(Delivery.message_id == made.message_id)).all()
        assert any(d.event == "erased" for d in rows)
        assert all(d.subject_id is None for d in rows)
        assert not s.scalars(select(Delivery).where(Delivery.subject_id == made.caller_id)).first()


@pytest.mark.gdpr("Art. 12(1)", "Art. 15")
def test_the_callers_report_reads_in_french(world: World, smtp: SmtpSink) -> None:
    import datetime as dt
    import html
    import io
    import re
    import zipfile

    from permanence.calls import service as calls
    from permanence.calls.model import Call
    from permanence.rights.service import Outbox

    world.app.state.rights_outbox = Outbox.from_settings(world.rt.settings)  # type: ignore[attr-defined]
    made = caller_with_records(
        world.rt, world.plumber.id, first=FIRST, last=LAST, phone=PHONE, email=EMAIL
    )
    # The call rang at 22:49:40 UTC on 31 December, was answered 20 s later and lasted
    # 2 min 05 s: in Paris it is 23 h 49 (UTC+1 in winter).
    answered = dt.datetime(2026, 12, 31, 22, 50, tzinfo=dt.UTC)
    with world.rt.db.session(ctx_for(world.plumber.id)) as s:
        call = s.get(Call, made.call_id)
        assert call is not None
        call.started_at = answered - dt.timedelta(seconds=20)
        calls.answer(s, call, at=answered)
        calls.complete(s, call, at=answered + dt.timedelta(seconds=125))
    client = world.login(world.client_plumber)
    base = f"/api/v1/accounts/{world.plumber.id}/rights/requests"
    req = client.post(
        base, json={"kind": "access", "requester": {"email": EMAIL}, "verified_by_controller": True}
    )
    done = client.post(f"{base}/{req.json()['id']}/execute")
    assert done.status_code == 200, done.text
    got = world.client().get(done.json()["download_url"].split("testserver", 1)[-1])
    assert got.status_code == 200, got.text
    z = zipfile.ZipFile(io.BytesIO(got.content))
    report = z.read("rapport.html").decode()
    text = re.sub(r"<[^>]+>", " ", report)
    text = re.sub(r"\s+", " ", html.unescape(text))
    # The call: Paris time in French words, its length, its state in French, recorded.
    assert "31 décembre 2026 à 23 h 49 2 min 05 s terminé oui" in text, text
    # The message: the mandate's French labels, not the field codes.
    assert "Nom " + LAST in text and "Adresse de l'intervention 3 rue des Ormes" in text
    assert "last_name" not in text and "completed" not in text
    assert "Demande d'intervention (nouveau)" in text
    assert "terminée (la présente réponse)" in text
    data = json.loads(z.read("donnees.json"))
    assert data["appels"][0]["duree_s"] == 125 and data["appels"][0]["enregistre"] is True


@pytest.mark.gdpr("Art. 17")
def test_the_destroyed_key_is_not_in_the_sqlite_files(world: World, smtp: SmtpSink) -> None:
    from permanence.crypto.model import SubjectKey
    from permanence.fsmodes import sqlite_file
    from permanence.rights.service import Outbox

    db_file = sqlite_file(world.rt.settings.effective_database_url)
    if db_file is None:
        pytest.skip("SQLite only: PostgreSQL is carved in tests/web/test_erasure_forensics.py")
    world.app.state.rights_outbox = Outbox.from_settings(world.rt.settings)  # type: ignore[attr-defined]
    from tests.factories import make_caller

    # Neighbours on the same page before and after: a deleted cell between live ones is
    # what SQLite would otherwise leave in a free block.
    for i in range(3):
        make_caller(world.rt, world.plumber.id, first="A", last=f"B{i}", phone=None, email=None)
    made = caller_with_records(
        world.rt, world.plumber.id, first=FIRST, last=LAST, phone=PHONE, email=EMAIL
    )
    for i in range(3):
        make_caller(world.rt, world.plumber.id, first="C", last=f"D{i}", phone=None, email=None)
    with world.rt.db.session(ctx_for(world.plumber.id)) as s:
        key = s.get(SubjectKey, made.caller_id)
        assert key is not None
        wrapped = bytes(key.wrapped_dek)

    def carve() -> int:
        found = 0
        for path in (db_file, db_file.with_name(db_file.name + "-wal")):
            if path.exists():
                found += path.read_bytes().count(wrapped)
        return found

    # Before: the carving finds the key (in the WAL or the main file).
    assert carve() >= 1
    client = world.login(world.client_plumber)
    base = f"/api/v1/accounts/{world.plumber.id}/rights/requests"
    req = client.post(
        base,
        json={"kind": "erasure", "requester": {"phone": PHONE}, "verified_by_controller": True},
    )
    done = client.post(f"{base}/{req.json()['id']}/execute")
    assert done.status_code == 200, done.text
    # After: not a copy left in the database's own files, right after the answer.
    assert carve() == 0
    wal = db_file.with_name(db_file.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
