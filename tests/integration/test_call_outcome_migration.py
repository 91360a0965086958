"""Migration 0073 gives existing calls their outcome from what they hold, and goes down and up
again cleanly (the schema's other migration tests: tests/integration/test_schema.py)."""

from __future__ import annotations

import datetime as dt
import uuid

from alembic import command
from sqlalchemy import Uuid, bindparam, create_engine, pool, text

from permanence import schema
from permanence.calls import service as calls
from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.runtime import Runtime
from tests.conftest import PG_URL
from tests.factories import OPERATOR_ID, make_account

PLUMBER_DID = "+33240000001"


def test_0073_backfills_outcomes_and_downgrades(rt: Runtime, settings: Settings) -> None:
    account = make_account(rt, "plomberie-durand").id
    started = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
    ids: dict[str, uuid.UUID] = {}
    for name in ("answered", "offered-voicemail", "busy", "hung-up", "ringing", "recorded"):
        with rt.db.session(AccessContext(Role.OPERATOR, "test", OPERATOR_ID)) as s:
            opened = calls.open_call(
                s, rt.keyring, dialled=PLUMBER_DID, caller_number=None, started_at=started
            )
            ids[name] = opened.call.id
    rt.close()
    url = settings.effective_migration_url
    engine = create_engine(url, poolclass=pool.NullPool)
    # Below 0088 a subject key has no erasure-epoch layer, and migration 0088 refuses to go
    # down while a key is wrapped under one (ADR 0029). The calls' own keys play no part in
    # 0073's backfill: they go, so that the schema can go down to where the calls were.
    with engine.begin() as conn:
        if PG_URL:
            conn.execute(text("SELECT set_config('app.account_id', :a, true)"), {"a": str(account)})
        conn.execute(text("DELETE FROM subject_keys"))
    command.downgrade(schema.alembic_config(url), "0070")
    try:
        with engine.begin() as conn:
            if PG_URL:
                conn.execute(
                    text("SELECT set_config('app.account_id', :a, true)"), {"a": str(account)}
                )

            def old(name: str, sql: str) -> None:
                stmt = text(f"UPDATE calls SET {sql} WHERE id = :id").bindparams(
                    bindparam("id", type_=Uuid())
                )
                conn.execute(stmt, {"id": ids[name]})

            ended = "ended_at = started_at"

            # What the code before 0073 left on calls.
            old("answered", f"status = 'completed', answered_at = started_at, {ended}")
            old("offered-voicemail", f"status = 'completed', voicemail = true, {ended}")
            old("busy", f"status = 'busy', {ended}")
            old("hung-up", f"status = 'canceled', {ended}")
            old("recorded", "recording_state = 'stored', status = 'completed'")
        schema.upgrade(url, settings.database_app_role)
        with engine.begin() as conn:
            if PG_URL:
                conn.execute(
                    text("SELECT set_config('app.account_id', :a, true)"), {"a": str(account)}
                )
            rows = conn.execute(
                text("SELECT id, outcome, voicemail, recording_state FROM calls")
            ).all()
        got = {uuid.UUID(str(r[0])): (r[1], bool(r[2]), r[3]) for r in rows}
        assert got[ids["answered"]] == ("answered", False, "off")
        # Offered voicemail without audio behind it: an abandonment now.
        assert got[ids["offered-voicemail"]] == ("abandoned", False, "off")
        assert got[ids["busy"]][0] == "failed"
        assert got[ids["hung-up"]][0] == "abandoned"
        assert got[ids["ringing"]][0] is None
        # "stored" with no recording left: retention had deleted it.
        assert got[ids["recorded"]] == ("abandoned", False, "deleted")
    finally:
        engine.dispose()
