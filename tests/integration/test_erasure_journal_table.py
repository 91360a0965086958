"""The erasure journal read back from a real, migrated database, as a restore reads it: through
the schema owner's connection. On PostgreSQL the table is under row-level security, forced on
its owner too, so only a read account by account sees every account's entries
(``backup.journal.read_database``); ``tests/unit/test_erasure_journal.py`` covers the rest on
an in-memory SQLite table. Run on PostgreSQL with PERMANENCE_TEST_DATABASE_URL set.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import create_engine, pool, text

from permanence.backup import journal
from permanence.backup.journal import JournalEntry
from permanence.config import Settings
from permanence.errors import ValidationFailed
from permanence.runtime import Runtime
from tests.conftest import PG_URL
from tests.factories import ctx_for, make_account

AT = dt.datetime(2027, 1, 4, 9, 30, tzinfo=dt.UTC)


def test_every_accounts_entries_are_read_back(rt: Runtime, settings: Settings) -> None:
    a = make_account(rt, "cabinet-lefevre", with_mandate=False).id
    b = make_account(rt, "plomberie-durand", with_mandate=False).id
    make_account(rt, "garage-sans-journal", with_mandate=False)  # no entries of its own
    first = JournalEntry(uuid.uuid4(), a, uuid.uuid4(), uuid.uuid4(), AT)
    second = JournalEntry(uuid.uuid4(), b, uuid.uuid4(), None, AT + dt.timedelta(hours=1))
    third = JournalEntry.offboarding(b, AT + dt.timedelta(days=2))
    for entry in (first, second, third):
        with rt.db.session(ctx_for(entry.account_id)) as s:
            journal.record(s, entry)
    engine = create_engine(settings.effective_migration_url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            if PG_URL:  # the owner sees nothing without an account: the policy is forced
                assert conn.scalar(text("SELECT count(*) FROM erasure_journal")) == 0
            read = journal.read_database(conn)
    finally:
        engine.dispose()
    assert sorted(read, key=lambda e: e.erased_at) == [first, second, third]


@pytest.mark.parametrize("last", ["[1]", "3", "null", '"x"'])
def test_a_mirror_whose_last_line_is_not_an_entry_refuses_the_erasure_as_the_replay_does(
    rt: Runtime, settings: Settings, last: str
) -> None:
    """A mirror file whose last line is JSON but no object (hand-edited, damaged): the
    erasure's line is not written after it and the erasure is not committed, with the words
    the replay uses for that file (before: AttributeError from ``_last_seq``)."""
    account = make_account(rt, "cabinet-lefevre", with_mandate=False).id
    mirror = settings.effective_erasure_journal_file
    mirror.parent.mkdir(parents=True, exist_ok=True)
    key = rt.keyring.derived_secret(journal.MAC_PURPOSE)
    damaged = journal.line_of(JournalEntry.offboarding(account, AT), key, 1) + "\n" + last + "\n"
    mirror.write_text(damaged)
    said = f"{mirror}, line 3: not an erasure journal entry"
    with pytest.raises(ValidationFailed) as replay:
        journal.read_file(mirror, key)
    assert str(replay.value) == said
    entry = JournalEntry(uuid.uuid4(), account, uuid.uuid4(), None, AT)
    with pytest.raises(ValidationFailed) as append, rt.db.session(ctx_for(account)) as s:
        journal.record(s, entry)
    assert str(append.value) == said
    assert mirror.read_text() == damaged
    engine = create_engine(settings.effective_migration_url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            assert journal.read_database(conn) == []
    finally:
        engine.dispose()
