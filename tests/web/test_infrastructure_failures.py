"""When the database or its disk fails: /readyz says so, requests answer 503 (507 for a full
disk) in the product's shape with Retry-After - a French page for people - and the log gets
one line per failure naming its cause, never a traceback. Real failures: a full SQLite
database, an unreadable SQLite file, a PostgreSQL server nobody listens for, and (PostgreSQL)
the application role's connections terminated and refused, then allowed back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, event, func, pool, select, text

from permanence.config import Settings
from permanence.context import AccessContext
from permanence.messages.model import Message
from permanence.runtime import Runtime
from permanence.web.app import create_app
from tests.conftest import PG_OWNER_URL, PG_URL, TEST_MASTER_KEY, free_port
from tests.web.conftest import World

PLUMBER_DID = "+33240000001"
TAKE = {
    "purpose": "intervention",
    "values": {
        "last_name": "Martin",
        "phone": "01 99 00 12 34",
        "address": "3 rue des Lilas, 44000 Nantes",
        "urgency": "à planifier",
        "description": "Fuite sous l'évier",
    },
}


def _messages(world: World) -> int:
    ctx = AccessContext.system("test", world.plumber.id)
    with world.rt.db.session(ctx, readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(Message)) or 0)


def _assert_clean_failure(
    records: list[logging.LogRecord], status: int, code: str, failures: int
) -> None:
    """One error line per failed request, naming the route and the cause; no traceback."""
    lines = [r for r in records if r.name == "permanence.web" and r.levelno >= logging.ERROR]
    assert len(lines) == failures, [r.getMessage() for r in lines]
    for r in lines:
        assert r.exc_info is None
        assert f"answered {status} {code}" in r.getMessage()
    assert not any(r.exc_info for r in records), "a traceback was logged"


@contextmanager
def sqlite_full(engine: Engine) -> Iterator[None]:
    """SQLite's own 'database or disk is full' (SQLITE_FULL): every connection may not grow
    the file by a single page, as on a full disk."""

    def _full(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        pages = cur.execute("PRAGMA page_count").fetchone()[0]
        cur.execute(f"PRAGMA max_page_count={pages}")
        cur.close()

    event.listen(engine, "connect", _full)
    engine.dispose()
    try:
        yield
    finally:
        event.remove(engine, "connect", _full)
        engine.dispose()


def test_readyz_answers_ready_with_the_schema_revision(world: World) -> None:
    from permanence.health import expected_revision

    r = world.client().get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"
    assert r.json()["schema"] == expected_revision()
    assert world.client().get("/healthz").json()["status"] == "ok"


@pytest.mark.skipif(PG_URL is not None, reason="SQLite's full disk")
def test_a_full_sqlite_disk_answers_507_and_nothing_is_half_written(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    op = world.login(world.operator)
    call = op.post("/api/v1/calls", json={"dialled": PLUMBER_DID, "caller_number": "0199001234"})
    assert call.status_code == 201, call.text
    url = f"/api/v1/accounts/{world.plumber.id}/calls/{call.json()['id']}/messages"
    before = _messages(world)
    caplog.set_level(logging.INFO)
    with sqlite_full(world.rt.db.engine):
        r = op.post(url, json=TAKE)
    assert r.status_code == 507, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "storage_full"
    assert "nothing was saved" in r.json()["message"]
    assert int(r.headers["Retry-After"]) > 0
    assert _messages(world) == before
    _assert_clean_failure(caplog.records, 507, "storage_full", failures=1)
    # Space is back: the same request goes through, without a restart.
    assert op.post(url, json=TAKE).status_code == 201
    assert _messages(world) == before + 1


@pytest.mark.skipif(PG_URL is not None, reason="a SQLite file")
@pytest.mark.parametrize("damage", ["not_a_database", "cannot_open"])
def test_an_unreadable_sqlite_file_answers_503(
    settings: Settings, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    if damage == "not_a_database":
        path = tmp_path / "garbage.db"
        path.write_bytes(b"this is not a database\n" * 400)
    else:
        path = tmp_path / "missing-directory" / "permanence.db"
    broken = settings.model_copy(update={"database_url": f"sqlite:///{path}"})
    rt = Runtime.from_settings(broken)
    try:
        client = TestClient(create_app(rt))
        caplog.set_level(logging.INFO)
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"] == "database_unavailable"
        assert ready.headers["Retry-After"]
        r = client.post(
            "/api/v1/auth/login",
            json={"email": "op@permanence.example", "password": "x" * 12, "totp": "123456"},
        )
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "database_unavailable"
        assert r.headers["Retry-After"] == "5"
        _assert_clean_failure(caplog.records, 503, "database_unavailable", failures=1)
    finally:
        rt.close()


def test_a_database_nobody_listens_for_answers_503_everywhere(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL stopped: the port refuses connections."""
    down = settings.model_copy(
        update={"database_url": f"postgresql+psycopg://app@127.0.0.1:{free_port()}/permanence"}
    )
    rt = Runtime.from_settings(down)
    try:
        client = TestClient(create_app(rt))
        caplog.set_level(logging.INFO)
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"] == "database_unavailable"
        assert "connection" in ready.json()["message"].lower()
        api = client.post(
            "/api/v1/auth/login",
            json={"email": "op@permanence.example", "password": "x" * 12, "totp": "123456"},
        )
        assert (api.status_code, api.json()["error"]) == (503, "database_unavailable")
        client.cookies.set("permanence_session", "a-session-token")
        page = client.get("/console", headers={"Accept-Language": "fr"}, follow_redirects=False)
        assert page.status_code == 503, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert "Le service est momentanément indisponible" in page.text
        assert "Renvoyez-le dans quelques secondes" in page.text
        assert page.headers["Retry-After"] == "5"
        # /healthz stays liveness: the process itself is fine.
        assert client.get("/healthz").status_code == 200
        _assert_clean_failure(caplog.records, 503, "database_unavailable", failures=2)
    finally:
        rt.close()


def test_readyz_and_serve_refuse_a_schema_behind_or_unknown(
    world: World, settings: Settings
) -> None:
    from permanence.health import expected_revision
    from tests.conftest import cli_env, run_cli

    url = PG_OWNER_URL or settings.effective_database_url
    owner = create_engine(url, poolclass=pool.NullPool)
    try:
        for revision, code in (("0050", "schema_behind"), ("9999", "schema_unknown")):
            with owner.begin() as conn:
                conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
            r = world.client().get("/readyz")
            assert r.status_code == 503
            assert r.json()["error"] == code
            assert revision in r.json()["message"] and expected_revision() in r.json()["message"]
            proc = run_cli(cli_env(settings), "serve", "--port", str(free_port()))
            assert proc.returncode == 3, proc.stderr
            assert "refusing to serve" in proc.stderr and revision in proc.stderr
            if code == "schema_behind":
                assert "permanence db upgrade" in proc.stderr
    finally:
        with owner.begin() as conn:
            conn.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": expected_revision()}
            )
        owner.dispose()
    assert world.client().get("/readyz").status_code == 200


def test_readyz_refuses_a_master_key_that_does_not_open_the_data(
    world: World, settings: Settings
) -> None:
    import base64

    assert TEST_MASTER_KEY
    other = settings.model_copy(update={"master_key": base64.b64encode(b"k" * 32).decode()})
    rt = Runtime.from_settings(other)
    try:
        r = TestClient(create_app(rt)).get("/readyz")
    finally:
        rt.close()
    assert r.status_code == 503
    assert r.json()["error"] == "master_key_mismatch"


@pytest.mark.skipif(PG_URL is None, reason="PostgreSQL connections")
def test_postgresql_connections_terminated_then_refused_answer_503_and_recover(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The application role's connections are killed (pg_terminate_backend) and new ones
    refused for a while, as during a server restart; then everything works again."""
    assert PG_URL and PG_OWNER_URL
    op = world.login(world.operator)
    url = f"/api/v1/accounts/{world.plumber.id}/messages"
    client = world.login(world.client_plumber)
    assert client.get(url).status_code == 200
    owner = create_engine(PG_OWNER_URL, poolclass=pool.NullPool)
    app_role = create_engine(PG_URL, poolclass=pool.NullPool)
    database = owner.url.database
    try:
        with app_role.connect() as killer:
            with owner.begin() as conn:
                conn.execute(text(f'REVOKE CONNECT ON DATABASE "{database}" FROM PUBLIC'))
                conn.execute(text(f'REVOKE CONNECT ON DATABASE "{database}" FROM {_app_role()}'))
            killed = killer.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND usename = current_user "
                    "AND pid <> pg_backend_pid()"
                )
            ).scalar()
            killer.commit()
        assert killed and killed > 0
        caplog.set_level(logging.INFO)
        r = client.get(url)
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "database_unavailable"
        assert r.headers["Retry-After"] == "5"
        taken = op.post("/api/v1/calls", json={"dialled": PLUMBER_DID, "caller_number": "0199"})
        assert taken.status_code == 503
        assert world.client().get("/readyz").status_code == 503
        _assert_clean_failure(caplog.records, 503, "database_unavailable", failures=2)
    finally:
        with owner.begin() as conn:
            conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO PUBLIC'))
            conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO {_app_role()}'))
        owner.dispose()
        app_role.dispose()
    # Back, without a restart.
    assert client.get(url).status_code == 200
    assert world.client().get("/readyz").status_code == 200


def _app_role() -> str:
    from sqlalchemy.engine import make_url

    assert PG_URL
    return f'"{make_url(PG_URL).username}"'


@contextmanager
def database_refused(world: World) -> Iterator[None]:
    """The database stops answering the application: on PostgreSQL its connections are
    terminated and new ones refused; on SQLite its file is swapped for one that is not a
    database. Put back on leaving, without restarting anything."""
    engine = world.rt.db.engine
    if PG_URL is None:
        path = Path(str(engine.url.database))
        files = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]
        engine.dispose()
        for f in files:
            if f.exists():
                f.rename(f.with_name(f.name + ".away"))
        path.write_bytes(b"this is not a database\n" * 400)
        try:
            yield
        finally:
            engine.dispose()
            path.unlink()
            for f in files:
                away = f.with_name(f.name + ".away")
                if away.exists():
                    away.rename(f)
        return
    assert PG_OWNER_URL
    owner = create_engine(PG_OWNER_URL, poolclass=pool.NullPool)
    app_role = create_engine(PG_URL, poolclass=pool.NullPool)
    database = owner.url.database
    try:
        with app_role.connect() as killer:
            with owner.begin() as conn:
                conn.execute(text(f'REVOKE CONNECT ON DATABASE "{database}" FROM PUBLIC'))
                conn.execute(text(f'REVOKE CONNECT ON DATABASE "{database}" FROM {_app_role()}'))
            killer.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND usename = current_user "
                    "AND pid <> pg_backend_pid()"
                )
            )
            killer.commit()
        yield
    finally:
        with owner.begin() as conn:
            conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO PUBLIC'))
            conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO {_app_role()}'))
        owner.dispose()
        app_role.dispose()


def test_the_console_s_message_form_keeps_what_was_typed_when_the_database_is_down(
    world: World,
) -> None:
    """An operator saves a message while the database is down: the French page says nothing
    was saved and shows what was typed in a form that sends it again, to the same address;
    once the database is back, that form saves the message as typed."""
    from tests.web.pages_helpers import page_login

    with world.rt.db.session(AccessContext.system("test:telephony")) as s:
        from permanence.calls import service as calls

        opened = calls.open_call(
            s, world.rt.keyring, dialled=PLUMBER_DID, caller_number="0612345678"
        )
        account_id, call_id = opened.account.id, opened.call.id
    op, csrf = page_login(world, world.operator)
    url = f"/console/appels/{account_id}/{call_id}"
    assert op.post(f"{url}/prendre", data={"csrf_token": csrf}).status_code == 303
    typed = {
        "csrf_token": csrf,
        "motif": "intervention",
        "f_last_name": "Lemoine-Château",
        "f_phone": "06 12 34 56 78",
        "f_address": "12 rue des Acacias, 44000 Nantes",
        "f_urgency": "à planifier",
        "f_description": "Fuite d'eau sous l'évier \"depuis ce matin\" & plancher mouillé",
    }
    before = _messages(world)
    with database_refused(world):
        r = op.post(f"{url}/enregistrer", data=typed, headers={"Accept-Language": "fr"})
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["Retry-After"] == "5"
    assert "Le service est momentanément indisponible" in r.text
    assert "Ce que vous aviez saisi est repris ci-dessous" in r.text
    assert r.headers["cache-control"] == "no-store"  # what was typed stays out of caches
    action, shown = _resend_form(r.text)
    assert action == f"{url}/enregistrer"
    assert shown == typed
    assert _messages(world) == before
    # The database is back: the page's own form sends what was typed, and it is saved.
    again = op.post(action, data=shown)
    assert again.status_code == 303, again.text
    assert _messages(world) == before + 1


def _resend_form(page: str) -> tuple[str, dict[str, str]]:
    """The error page's form that sends again what was typed: its address and its values."""
    import html
    import re

    form = re.search(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', page, re.S)
    assert form is not None, page
    values = {
        m.group(1): html.unescape(m.group(2) if m.group(2) is not None else m.group(3))
        for m in re.finditer(
            r'name="([^"]+)"(?: value="([^"]*)"|[^>]*>([^<]*)</textarea>)', form.group(2)
        )
    }
    return html.unescape(form.group(1)), values


def test_the_dpo_desk_s_breach_form_keeps_what_was_typed_when_the_database_is_down(
    world: World,
) -> None:
    """The same on the DPO desk, whose form the route has already read when the failure
    comes: the breach's description is shown back, and sending it again opens the breach."""
    from permanence.breaches.model import Breach
    from tests.web.pages_helpers import page_login

    dpo, csrf = page_login(world, world.dpo)
    typed = {
        "csrf_token": csrf,
        "prise": "2026-12-01T09:30",
        "nature": "Ordinateur portable volé dans le train <avec> les exports du jour",
    }
    with database_refused(world):
        r = dpo.post("/dpo/violations/nouvelle", data=typed, headers={"Accept-Language": "fr"})
    assert r.status_code == 503, r.text
    assert "Ce que vous aviez saisi est repris ci-dessous" in r.text
    action, shown = _resend_form(r.text)
    assert (action, shown) == ("/dpo/violations/nouvelle", typed)
    again = dpo.post(action, data=shown)
    assert again.status_code == 303, again.text
    with world.rt.db.session(AccessContext.system("test"), readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Breach)) == 1
