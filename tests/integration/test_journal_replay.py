"""Replaying the erasure journal on a restored database (backup/replay.py), called directly
with the deployment's steps (rights/journal.py): each journalled erasure and off-boarding
carried out again (rights/erasure.py, contracts/offboarding.py ``replay_offboarding``),
account by account, the files deleted after the commit, entries of absent accounts counted,
the restore audited; running it twice changes nothing. (tests/integration/test_backup.py
covers the same through the ``permanence restore`` and ``rights journal-replay`` commands,
end to end.)"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select

from permanence.accounts.model import Account, AccountStatus
from permanence.audit.model import AuditEntry
from permanence.backup import journal as ejournal
from permanence.backup.journal import JournalEntry
from permanence.backup.model import ErasureJournal
from permanence.backup.replay import replay
from permanence.context import AccessContext
from permanence.contracts.offboarding import replay_offboarding
from permanence.crypto.model import SubjectKey
from permanence.rights.journal import JOURNAL_STEPS
from permanence.runtime import Runtime
from permanence.subjects.model import Caller
from tests.factories import caller_with_records, make_account

AT = dt.datetime(2027, 1, 4, 9, 30, tzinfo=dt.UTC)


def _actions(rt: Runtime) -> list[str]:
    with rt.db.session(AccessContext.system("test")) as s:
        bodies = s.scalars(select(AuditEntry.body).order_by(AuditEntry.seq)).all()
    return [b.split('"action":"')[1].split('"')[0] for b in bodies]


def test_the_journal_is_replayed_account_by_account_and_only_once(rt: Runtime) -> None:
    plumber = make_account(rt, "plomberie-durand")
    medical = make_account(rt, "cabinet-lefevre")
    erased = caller_with_records(
        rt, plumber.id, first="Paul", last="Roux", phone="0612345678", email="p@exemple.fr"
    )
    kept = caller_with_records(
        rt, plumber.id, first="Léa", last="Petit", phone="0698765432", email="l@exemple.fr"
    )
    recordings = rt.settings.recordings_dir
    assert (recordings / erased.recording_key).is_file()
    absent_account = uuid.uuid4()
    entries = [
        JournalEntry(uuid.uuid4(), absent_account, uuid.uuid4(), None, AT),
        JournalEntry(uuid.uuid4(), plumber.id, erased.caller_id, None, AT),
        JournalEntry.offboarding(medical.id, AT + dt.timedelta(minutes=1)),
        JournalEntry.offboarding(absent_account, AT + dt.timedelta(minutes=2)),
    ]
    progress: list[tuple[str, int, int]] = []
    before = len(_actions(rt))

    result = replay(
        rt.settings,
        rt.keyring,
        entries,
        steps=JOURNAL_STEPS,
        action="backup.restore",
        details={"journal_entries": 4},
        report=lambda what, done, total: progress.append((what, done, total)),
    )

    assert result == (2, 2)  # two carried out; two of an account the database does not have
    assert progress == [("erasure journal replay", n, 2) for n in range(3)]
    with rt.db.session(AccessContext.system("test", plumber.id)) as s:
        callers = set(s.scalars(select(Caller.id).where(Caller.account_id == plumber.id)))
        assert callers == {kept.caller_id}
        assert s.get(SubjectKey, erased.caller_id) is None
        assert s.get(SubjectKey, kept.caller_id) is not None
        journalled = set(s.scalars(select(ErasureJournal.id)))
    with rt.db.session(AccessContext.system("test", medical.id)) as s:
        status = s.scalar(select(Account.status).where(Account.id == medical.id))
        assert status == AccountStatus.OFFBOARDED
        journalled |= set(s.scalars(select(ErasureJournal.id)))
    assert journalled == {entries[1].id, entries[2].id}
    assert not (recordings / erased.recording_key).exists()  # deleted after the commit
    assert (recordings / kept.recording_key).is_file()
    actions = _actions(rt)[before:]
    # The restore first, then each account's replay (the erased caller's message had been
    # delivered: its recipient is told, Art. 19).
    assert actions == [
        "backup.restore",
        "delivery.notify_change",
        "rights.erase.replay",
        "account.offboard.replay",
    ]

    again = replay(
        rt.settings, rt.keyring, entries, steps=JOURNAL_STEPS, action="backup.restore", details={}
    )
    assert again == (0, 2)
    assert _actions(rt)[before + len(actions) :] == ["backup.restore"]


def test_an_offboarding_replayed_on_an_account_already_offboarded_puts_back_its_entry(
    rt: Runtime,
) -> None:
    medical = make_account(rt, "cabinet-lefevre")
    entry = JournalEntry.offboarding(medical.id, AT)
    with rt.db.session(AccessContext.system("backup:restore", medical.id)) as s:
        changed, files = replay_offboarding(s, rt.keyring, entry)
        assert (changed, files) == (True, ())
        assert s.get(ErasureJournal, entry.id) is not None
    # A restored database showing the account off-boarded, but not under this entry (the
    # journal row was lost): the entry is put back, the replay audited.
    lost = JournalEntry.offboarding(medical.id, AT + dt.timedelta(minutes=1))
    with rt.db.session(AccessContext.system("backup:restore", medical.id)) as s:
        assert replay_offboarding(s, rt.keyring, lost) == (True, ())
        assert ejournal.ensure(s, lost) is False
    with rt.db.session(AccessContext.system("test")) as s:
        body = s.scalars(select(AuditEntry.body).order_by(AuditEntry.seq.desc()).limit(1)).one()
    assert '"action":"account.offboard.replay"' in body
    assert f'"journal_entry":"{lost.id}"' in body and '"journal_restored":true' in body
    with rt.db.session(AccessContext.system("backup:restore", medical.id)) as s:
        assert replay_offboarding(s, rt.keyring, lost) == (False, ())
        elsewhere = JournalEntry.offboarding(uuid.uuid4(), AT)
        assert replay_offboarding(s, rt.keyring, elsewhere) == (False, ())


def test_two_offboardings_of_one_account_are_both_journalled_again(rt: Runtime) -> None:
    # Off-boarded, restored from an older backup without the journal, off-boarded again: the
    # journal holds two entries for the account. The replay carries out the first and puts
    # back the second's row as well.
    medical = make_account(rt, "cabinet-lefevre")
    first = JournalEntry.offboarding(medical.id, AT)
    second = JournalEntry.offboarding(medical.id, AT + dt.timedelta(days=1))
    assert replay(
        rt.settings, rt.keyring, [first, second], steps=JOURNAL_STEPS, action="t", details={}
    ) == (2, 0)
    with rt.db.session(AccessContext.system("test", medical.id)) as s:
        assert set(s.scalars(select(ErasureJournal.id))) == {first.id, second.id}
