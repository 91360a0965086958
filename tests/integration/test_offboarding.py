"""Off-boarding: export, crypto-shred and delete, certify; nothing of the client stays readable."""

from __future__ import annotations

import datetime as dt
import json
import uuid
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select

from permanence.audit import integrity
from permanence.backup import journal as ejournal
from permanence.calls import service as calls
from permanence.context import AccessContext, Role
from permanence.contracts import offboarding
from permanence.crypto.model import SubjectKey
from permanence.errors import Conflict, KeyUnavailable
from permanence.messages import service as messages
from permanence.rights.model import Download, ErasureJournal, RightsRequest
from permanence.runtime import Runtime
from permanence.subjects.model import Caller
from tests.factories import caller_with_records, ctx_for, make_account, make_caller


def _activity(rt: Runtime, account_id: object) -> None:
    with rt.db.session(ctx_for(account_id, reason="call:test")) as s:  # type: ignore[arg-type]
        opened = calls.open_call(s, rt.keyring, dialled="+33478000001", caller_number="0199001234")
        messages.take_message(
            s,
            rt.keyring,
            caller_id=opened.caller.id,
            purpose="message",
            values={"last_name": "Martin", "phone": "0199001234", "note": "Rappeler demain"},
            call_id=opened.call.id,
        )


@pytest.mark.gdpr("Art. 28(3)(g)")
def test_offboarding_leaves_no_readable_data_and_certifies_the_counts(
    rt: Runtime, tmp_path: Path
) -> None:
    account = make_account(rt)
    other = make_account(rt, "plomberie-durand")
    caller = make_caller(rt, account.id)
    _activity(rt, account.id)
    kept = make_caller(rt, other.id, first="Denis", last="Roux", phone="0199001004")
    ctx = AccessContext(role=Role.DPO, reason="offboard", account_id=account.id)
    with rt.db.session(ctx) as s:
        exported = offboarding.export_account(s, rt.keyring, account.id, tmp_path)
    assert exported.path.stat().st_mode & 0o077 == 0
    with zipfile.ZipFile(exported.path) as zf:
        callers = json.loads(zf.read("callers.json"))
        msgs = json.loads(zf.read("messages.json"))
        assert "mandates/v1.yaml" in zf.namelist()
    assert {"first": "Camille", "last": "Martin"} in [c["name"] for c in callers]
    assert msgs[0]["payload"]["note"] == "Rappeler demain"
    assert exported.unopened == 0
    with rt.db.session(ctx) as s:
        cert = offboarding.destroy_account(s, rt.keyring, account.id, export=exported)
    doc = cert.document
    assert doc["keys_destroyed"] == {"subject_keys": 2, "account_keys": 1}
    assert doc["rows_deleted"]["callers"] == 2
    assert doc["rows_deleted"]["messages"] == 1
    assert doc["rows_deleted"]["calls"] == 1
    assert doc["rows_deleted"]["mandates"] == 1
    assert doc["export"]["sha256"] == exported.sha256
    assert offboarding.verify_certificate(doc, cert.signature, cert.public_key)
    tampered = {**doc, "rows_deleted": {**doc["rows_deleted"], "callers": 1}}
    assert not offboarding.verify_certificate(tampered, cert.signature, cert.public_key)
    assert "Certificat de suppression" in cert.html()
    # Issuer, signatory, contract, the controller's choice, backups, sub-processors, what is
    # kept and why: in French.
    assert doc["issuer"]["name"] and doc["signatory"]["capacity"]
    assert doc["controller_choice"] == "restitution des données (export remis) puis suppression"
    expires = dt.date.fromisoformat(doc["last_backup_expires_on"])
    assert expires == (dt.datetime.fromisoformat(doc["issued_at"]) + dt.timedelta(days=30)).date()
    assert "journal d'audit" in doc["kept_elsewhere"]["audit_log"]
    html = cert.html()
    assert "Choix du responsable du traitement" in html and "Sauvegardes" in html
    assert "Émis par" in html
    # Journalled like an erasure (table and mirror file), so that a restore replays it.
    with rt.db.session(ctx, readonly=True) as s:
        [entry] = s.scalars(
            select(ErasureJournal).where(ErasureJournal.account_id == account.id)
        ).all()
    assert (entry.kind, entry.subject_id, entry.request_id) == ("account", None, None)
    assert doc["journal_entry"] == str(entry.id) and doc["replay_of"] is None
    mirror = ejournal.read_file(
        rt.settings.effective_erasure_journal_file,
        rt.keyring.derived_secret(ejournal.MAC_PURPOSE),
    )
    assert mirror == [ejournal.JournalEntry.of(entry)]
    with rt.db.session(ctx, readonly=True) as s:
        assert set(offboarding.remaining_rows(s, account.id)) <= set(offboarding.RETAINED)
        assert s.scalars(select(Caller).where(Caller.account_id == account.id)).first() is None
        with pytest.raises(KeyUnavailable):
            rt.keyring.cipher(s, account.id, caller)
        # The audit chain still holds, and it recorded the off-boarding.
        result = integrity.verify(s, rt.keyring.checkpoint_signing_key().public_key())
        assert result.ok, result.line()
    # Another client is untouched.
    with rt.db.session(ctx_for(other.id)) as s:
        assert s.get(SubjectKey, kept) is not None
    with pytest.raises(Conflict, match="already off-boarded"), rt.db.session(ctx) as s:
        offboarding.destroy_account(s, rt.keyring, account.id, export=None)


def test_offboarding_frees_the_files_of_the_accounts_recordings_and_rights_packages(
    rt: Runtime,
) -> None:
    """``destroy_account`` names the file of each recording and rights package of the account
    (found by table, ``FILE_TABLES``), for its caller to delete after the commit; the files of
    another account are not named."""
    plumber = make_account(rt, "plomberie-durand")
    other = make_account(rt)
    records = caller_with_records(
        rt, plumber.id, first="Paul", last="Roux", phone="0612345678", email="p@exemple.fr"
    )
    now = dt.datetime.now(dt.UTC)
    packages: dict[uuid.UUID, str] = {}
    for account_id, subject_id in (
        (plumber.id, records.caller_id),
        (other.id, make_caller(rt, other.id)),
    ):
        with rt.db.session(ctx_for(account_id)) as s:
            req = RightsRequest(
                account_id=account_id,
                kind="access",
                source="client",
                subject_id=subject_id,
                first_due_at=now,
                due_at=now,
            )
            s.add(req)
            s.flush()
            packages[account_id] = f"{account_id}/{uuid.uuid4()}.pmr"
            s.add(
                Download(
                    token_hash=uuid.uuid4().hex,
                    account_id=account_id,
                    request_id=req.id,
                    subject_id=subject_id,
                    purpose="access_package",
                    filename="paquet.zip",
                    storage_key=packages[account_id],
                    expires_at=now + dt.timedelta(days=7),
                )
            )
    ctx = AccessContext(role=Role.DPO, reason="offboard", account_id=plumber.id)
    with rt.db.session(ctx) as s:
        assert offboarding.freed_files(s, plumber.id) == (
            ("recordings", records.recording_key),
            ("files", packages[plumber.id]),
        )
        cert = offboarding.destroy_account(s, rt.keyring, plumber.id, export=None)
    assert cert.files == (("recordings", records.recording_key), ("files", packages[plumber.id]))
