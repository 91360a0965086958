"""The erasure journal read back from a real, migrated database, as a restore reads it: through
the schema owner's connection. On PostgreSQL the table is under row-level security, forced on
its owner too, so only a read account by account sees every account's entries
(``backup.journal.read_database``); ``tests/unit/test_erasure_journal.py`` covers the rest on
an in-memory SQLite table. Run on PostgreSQL with PERMANENCE_TEST_DATABASE_URL set.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import create_engine, pool, text

from permanence.backup import journal
from permanence.backup.journal import JournalEntry
from permanence.config import Settings
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
