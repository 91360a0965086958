"""The delivery worker and a database that goes away mid-pass (issue 25): the mails are at
the real SMTP server, the outcomes cannot be written. Each message must still reach the
server exactly once - after a blip (the record is retried) and after a long outage (the
outcomes wait in the worker's backlog) - with a stable Message-ID and X-Permanence-Delivery.

The outage is real: on SQLite the database file cannot grow (SQLite's own SQLITE_FULL, as on
a full disk); on PostgreSQL the application role's connections are terminated
(pg_terminate_backend) and new ones refused until the outage ends."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, event, pool, select, text
from sqlalchemy.engine import make_url

from permanence.accounts.service import import_mandate
from permanence.config import Settings
from permanence.context import Role
from permanence.db import utcnow
from permanence.delivery.model import Delivery
from permanence.delivery.worker import Backlog, Channels, OutcomesNotRecorded, run_due
from permanence.messages import service as messages
from permanence.runtime import Runtime
from tests.conftest import PG_OWNER_URL, PG_URL, SmtpSink, free_port
from tests.factories import ctx_for, demo_mandate_text, make_account, make_caller

VALUES = {
    "last_name": "Martin",
    "phone": "01 99 00 12 34",
    "address": "3 rue des Lilas, 44000 Nantes",
    "urgency": "à planifier",
    "description": "Fuite sous l'évier",
}
FAST = (0.2,) * 20  # the worker's record retries, quicker than in production


class Outage:
    """Cuts the application's database off, and brings it back."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.down = False
        self._lock = threading.Lock()

    def _sqlite_full(self, dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        pages = cur.execute("PRAGMA page_count").fetchone()[0]
        cur.execute(f"PRAGMA max_page_count={pages}")
        cur.close()

    def start(self) -> None:
        with self._lock:
            if self.down:
                return
            self.down = True
            if PG_URL is None:
                event.listen(self.rt.db.engine, "connect", self._sqlite_full)
                self.rt.db.engine.dispose()
                return
            assert PG_OWNER_URL
            database = make_url(PG_URL).database
            role = make_url(PG_URL).username
            owner = create_engine(PG_OWNER_URL, poolclass=pool.NullPool)
            killer = create_engine(PG_URL, poolclass=pool.NullPool)
            with killer.connect() as k:
                with owner.begin() as conn:
                    conn.execute(text(f'REVOKE CONNECT ON DATABASE "{database}" FROM PUBLIC'))
                    conn.execute(text(f'REVOKE CONNECT ON DATABASE "{database}" FROM "{role}"'))
                k.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND usename = current_user "
                        "AND pid <> pg_backend_pid()"
                    )
                )
                k.commit()
            owner.dispose()
            killer.dispose()

    def end(self) -> None:
        with self._lock:
            if not self.down:
                return
            self.down = False
            if PG_URL is None:
                event.remove(self.rt.db.engine, "connect", self._sqlite_full)
                self.rt.db.engine.dispose()
                return
            assert PG_OWNER_URL
            database = make_url(PG_URL).database
            role = make_url(PG_URL).username
            owner = create_engine(PG_OWNER_URL, poolclass=pool.NullPool)
            with owner.begin() as conn:
                conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO PUBLIC'))
                conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"'))
            owner.dispose()


@pytest.fixture
def outage(rt: Runtime) -> Iterator[Outage]:
    o = Outage(rt)
    yield o
    o.end()


class CuttingSmtp(SmtpSink):
    """The test's SMTP server; ``on_first`` runs when the first mail arrives, mid-pass."""

    def __init__(self) -> None:
        super().__init__()
        self.on_first: Callable[[], None] | None = None
        handler = self.controller.handler
        original = handler.handle_DATA
        sink = self

        async def handle_data(server: object, session: object, envelope: object) -> str:
            answer: str = await original(server, session, envelope)
            if sink.on_first is not None:
                cut, sink.on_first = sink.on_first, None
                cut()
            return answer

        handler.handle_DATA = handle_data

    def delivery_ids(self) -> Counter[str]:
        ids: Counter[str] = Counter()
        for _frm, _to, raw in self.messages:
            msg = message_from_bytes(raw, policy=policy.default)
            delivery = str(msg["X-Permanence-Delivery"])
            assert str(msg["Message-ID"]) == f"<{delivery}@permanence.example>"
            ids[delivery] += 1
        return ids


@pytest.fixture
def mail_server(settings: Settings) -> Iterator[CuttingSmtp]:
    sink = CuttingSmtp()
    settings.smtp_host, settings.smtp_port = "127.0.0.1", sink.start()
    settings.mail_from = "permanence@permanence.example"
    yield sink
    sink.stop()


def _take_messages(rt: Runtime, n: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    account = make_account(rt, "plomberie-durand")
    doc = yaml.safe_load(demo_mandate_text("plomberie-durand"))
    doc["recipients"] = [r for r in doc["recipients"] if r["kind"] != "webhook"]
    doc.pop("on_call", None)  # e-mail to the client only: one mail per message
    doc.pop("after_hours", None)  # forwarding out of hours needs the on-call list
    with rt.db.session(ctx_for(account.id, Role.ADMIN)) as s:
        import_mandate(s, doc, account_id=account.id)
    taken = []
    for _ in range(n):
        caller = make_caller(rt, account.id)
        with rt.db.session(ctx_for(account.id)) as s:
            msg = messages.take_message(
                s, rt.keyring, caller_id=caller, purpose="intervention", values=VALUES
            )
            taken.append(msg.id)
    return account.id, taken


def _email_rows(rt: Runtime, account_id: uuid.UUID) -> list[tuple[str, int, str | None]]:
    with rt.db.session(ctx_for(account_id, Role.ADMIN), readonly=True) as s:
        rows = s.execute(
            select(Delivery.status, Delivery.attempts, Delivery.last_error).where(
                Delivery.channel == "email"
            )
        ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def test_a_database_blip_mid_pass_sends_each_message_once(
    rt: Runtime,
    settings: Settings,
    mail_server: CuttingSmtp,
    outage: Outage,
    caplog: pytest.LogCaptureFixture,
) -> None:
    account_id, _ = _take_messages(rt, 12)

    def blip() -> None:
        outage.start()
        threading.Timer(1.5, outage.end).start()

    mail_server.on_first = blip
    caplog.set_level(logging.INFO, logger="permanence.delivery")
    now = utcnow()
    counts = run_due(rt, now=now, channels=Channels.from_settings(settings), retries=FAST)
    assert counts["sent"] == 12
    assert not outage.down
    # The worker said why it waited: the cause's class and the driver's words, once per try.
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert retries, "the outage was not met"
    assert all("OperationalError" in line for line in retries), retries
    # After the lease, nothing is due again: the outcomes were recorded.
    later = now + dt.timedelta(minutes=11)
    assert run_due(rt, now=later, channels=Channels.from_settings(settings))["sent"] == 0
    ids = mail_server.delivery_ids()
    assert len(ids) == 12 and set(ids.values()) == {1}
    assert sorted(_email_rows(rt, account_id)) == [("sent", 1, None)] * 12


def test_a_long_outage_keeps_the_outcomes_and_never_resends(
    rt: Runtime, settings: Settings, mail_server: CuttingSmtp, outage: Outage
) -> None:
    account_id, _ = _take_messages(rt, 8)
    mail_server.on_first = outage.start
    backlog = Backlog()
    now = utcnow()
    channels = Channels.from_settings(settings)
    with pytest.raises(OutcomesNotRecorded):
        run_due(rt, now=now, channels=channels, backlog=backlog, retries=(0.1, 0.1))
    assert len(backlog) == 8 and len(mail_server.messages) == 8
    outage.end()
    # The lease has run out: without the backlog, every message would go out again now.
    later = now + dt.timedelta(minutes=11)
    counts = run_due(rt, now=later, channels=channels, backlog=backlog)
    assert counts["sent"] == 8 and len(backlog) == 0
    assert run_due(rt, now=later + dt.timedelta(minutes=11), channels=channels)["sent"] == 0
    ids = mail_server.delivery_ids()
    assert len(ids) == 8 and set(ids.values()) == {1}
    assert sorted(_email_rows(rt, account_id)) == [("sent", 1, None)] * 8


def test_last_error_is_cleared_when_a_retry_goes_through(
    rt: Runtime, settings: Settings, mail_server: CuttingSmtp
) -> None:
    account_id, _ = _take_messages(rt, 1)
    real_port = settings.smtp_port
    settings.smtp_port = free_port()  # the SMTP server is down
    now = utcnow()
    assert run_due(rt, now=now, channels=Channels.from_settings(settings))["retrying"] == 1
    assert _email_rows(rt, account_id) == [("pending", 1, "smtp_unavailable")]
    settings.smtp_port = real_port
    later = now + dt.timedelta(minutes=2)
    assert run_due(rt, now=later, channels=Channels.from_settings(settings))["sent"] == 1
    assert _email_rows(rt, account_id) == [("sent", 2, None)]
    assert len(mail_server.delivery_ids()) == 1
