"""Supervision over HTTP: who may see which statistics, presence driving the live board and
the operator's aggregates, charts as SVG, and the demo data's usage report opened as CSV and
PDF — with no caller's name, number, e-mail or message text in any of it."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from permanence.calls.model import Call
from permanence.context import AccessContext
from permanence.demo.loader import CLIENT_USERS, DEMO_PASSWORD, demo_callers, load_demo
from permanence.messages.model import Appointment, Message
from permanence.render import PARIS
from permanence.staff.model import User
from tests.web.conftest import Person, World, make_person

PLUMBER_DID = "+33240000001"


def _month(value: dt.datetime) -> str:
    return value.astimezone(PARIS).strftime("%Y-%m")


def test_usage_report_of_the_demo_data_in_csv_and_pdf(world: World) -> None:
    rt = world.rt
    # The world made the plumber and the practice already: the demo needs its own database.
    from tests.conftest import PG_URL

    if PG_URL:
        pytest.skip("the demo loads into an empty database; covered on SQLite")
    fresh = world.rt.settings.data_dir / "demo.db"
    from permanence import schema
    from permanence.config import Settings
    from permanence.runtime import Runtime
    from permanence.web.app import create_app
    from tests.conftest import TEST_MASTER_KEY

    schema.upgrade(f"sqlite:///{fresh}")
    demo_rt = Runtime.from_settings(
        Settings(
            data_dir=rt.settings.data_dir,
            database_url=f"sqlite:///{fresh}",
            master_key=TEST_MASTER_KEY,
        )
    )
    try:
        load_demo(demo_rt, calls_per_account=12)
        with demo_rt.db.session(AccessContext.system("test"), readonly=True) as s:
            from permanence.accounts.model import Account

            plumber = s.scalars(select(Account).where(Account.slug == "plomberie-durand")).one()
        with demo_rt.db.session(AccessContext.system("test", plumber.id), readonly=True) as s:
            starts = s.scalars(select(Call.started_at).where(Call.account_id == plumber.id)).all()
            mine = Message.account_id == plumber.id
            messages_at = s.scalars(select(Message.created_at).where(mine)).all()
            n_messages = len(messages_at)
            n_appointments = len(
                s.scalars(select(Appointment.id).where(Appointment.account_id == plumber.id)).all()
            )
        from fastapi.testclient import TestClient

        client = TestClient(create_app(demo_rt))
        r = client.post(
            "/api/v1/auth/login",
            json={"email": CLIENT_USERS["plomberie-durand"][0], "password": DEMO_PASSWORD},
        )
        assert r.status_code == 200, r.text
        months = sorted({_month(t) for t in starts})
        per_month = {m: sum(1 for t in starts if _month(t) == m) for m in months}
        total_messages = 0
        secrets = _demo_secrets()
        base = f"/api/v1/accounts/{plumber.id}/usage"
        for month in months:
            got = client.get(f"{base}/{month}.csv")
            assert got.status_code == 200
            assert got.headers["content-type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO(got.text)))
            assert len(rows) == 1
            row = rows[0]
            # Every demo call is answered and completed (see demo/loader.py).
            assert int(row["calls_received"]) == per_month[month]
            assert int(row["calls_answered"]) == per_month[month]
            assert int(row["calls_abandoned"]) == 0
            assert int(row["billed_minutes"]) >= int(row["calls_answered"]) * 2
            assert int(row["messages"]) == sum(1 for t in messages_at if _month(t) == month)
            total_messages += int(row["messages"])

            pdf = client.get(f"{base}/{month}.pdf")
            assert pdf.status_code == 200
            assert pdf.headers["content-type"] == "application/pdf"
            text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
            assert "Relevé d'utilisation" in text
            assert f"Appels reçus {row['calls_received']}" in text
            assert f"Messages pris {row['messages']}" in text
            assert f"Minutes facturées (minute entamée par appel) {row['billed_minutes']}" in text
            for secret in secrets:
                assert secret not in got.text
                assert secret not in text
        assert total_messages == n_messages
        assert n_appointments > 0
        # The charts and the statistics of the same data carry nothing personal either.
        first, last = min(starts).astimezone(PARIS), max(starts).astimezone(PARIS)
        query = f"start={first.date().isoformat()}&end={last.date().isoformat()}"
        stats_base = f"/api/v1/accounts/{plumber.id}"
        outputs = [client.get(f"{stats_base}/stats?{query}").text]
        for name in ("volume-by-hour", "volume-by-day", "answer-times", "abandonment", "trend"):
            svg = client.get(f"{stats_base}/charts/{name}.svg?{query}")
            assert svg.status_code == 200
            assert svg.headers["content-type"] == "image/svg+xml"
            assert "<script" not in svg.text
            outputs.append(svg.text)
        assert client.get(f"{stats_base}/stats?{query}").json()["calls"]["received"] == len(starts)
        for out in outputs:
            for secret in secrets:
                assert secret not in out
    finally:
        demo_rt.close()


def _demo_secrets() -> list[str]:
    """The demo callers' identifiers, as they could appear in clear."""
    from permanence.crypto import normalize

    out: list[str] = []
    for callers in demo_callers().values():
        for c in callers:
            out += [c.last, c.phone, normalize.phone_e164(c.phone, "FR")]
            if c.email:
                out.append(c.email)
    return [s for s in out if len(s) >= 5]


def _open_and_answer(world: World, op_client: object) -> str:
    call = op_client.post(  # type: ignore[attr-defined]
        "/api/v1/calls", json={"dialled": PLUMBER_DID, "caller_number": "0199001234"}
    ).json()
    base = f"/api/v1/accounts/{world.plumber.id}/calls/{call['id']}"
    assert op_client.post(f"{base}/answer").status_code == 200  # type: ignore[attr-defined]
    return base


def test_presence_follows_calls_and_shows_on_the_live_board(world: World) -> None:
    op = world.login(world.operator)
    sup = world.login(world.supervisor)
    assert op.post("/api/v1/presence", json={"state": "break"}).json()["state"] == "break"
    board = sup.get("/api/v1/board").json()
    mine = [o for o in board["operators"] if o["user_id"] == str(world.operator.id)]
    assert [o["state"] for o in mine] == ["break"]

    base = _open_and_answer(world, op)
    assert op.get("/api/v1/presence").json()["state"] == "on_call"
    op.post(f"{base}/complete")
    assert op.get("/api/v1/presence").json()["state"] == "wrap_up"
    assert op.post("/api/v1/presence", json={"state": "free"}).json()["state"] == "free"
    stats = op.get(f"/api/v1/operators/{world.operator.id}/stats").json()
    assert stats["calls_handled"] == 1
    assert stats["days"][0]["wrap_ups"] == 1

    # Only free, break and offline are set by hand; the rest follows the calls.
    bad = op.post("/api/v1/presence", json={"state": "on_call"})
    assert bad.status_code == 422
    assert op.post("/api/v1/presence", json={"state": "offline"}).status_code == 200
    board = sup.get("/api/v1/board").json()
    assert str(world.operator.id) not in [o["user_id"] for o in board["operators"]]


def test_a_waiting_call_is_on_the_board(world: World) -> None:
    op = world.login(world.operator)
    op.post("/api/v1/calls", json={"dialled": PLUMBER_DID, "caller_number": "0199001234"})
    board = world.login(world.supervisor).get("/api/v1/board").json()
    plumber = next(a for a in board["accounts"] if a["slug"] == "plomberie-durand")
    assert plumber["waiting"] == 1
    assert board["waiting"] == 1


@pytest.mark.parametrize(
    ("who", "status"),
    [("operator", 403), ("client_medical", 403), ("dpo", 403), ("admin", 200)],
)
def test_the_board_is_for_supervisors(world: World, who: str, status: int) -> None:
    person: Person = getattr(world, who)
    assert world.login(person).get("/api/v1/board").status_code == status


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("supervisor", 200),
        ("dpo", 200),
        ("admin", 200),
        ("client_plumber", 200),
        ("client_medical", 404),
        ("operator", 403),
    ],
)
def test_account_statistics_access(world: World, who: str, status: int) -> None:
    c = world.login(getattr(world, who))
    base = f"/api/v1/accounts/{world.plumber.id}"
    assert c.get(f"{base}/stats").status_code == status
    assert c.get(f"{base}/usage/2026-03").status_code == status
    assert c.get(f"{base}/charts/trend.svg").status_code == status


def test_operator_statistics_are_for_the_operator_and_supervisors(world: World) -> None:
    other = make_person(world.rt, world.operator.role, "autre.op@permanence.example")
    op = world.login(world.operator)
    base = _open_and_answer(world, op)
    op.post(f"{base}/complete")
    path = f"/api/v1/operators/{world.operator.id}/stats"
    assert op.get(path).status_code == 200
    assert world.login(world.supervisor).get(path).json()["calls_handled"] == 1
    assert world.login(other).get(path).status_code == 404
    assert world.login(world.client_plumber).get(path).status_code == 403
    assert world.login(world.dpo).get(path).status_code == 403
    assert world.login(world.admin).get(path).status_code == 403
    assert world.client().get(path).status_code == 401
    team = "/api/v1/operators/stats"
    assert world.login(world.supervisor).get(team).status_code == 200
    assert op.get(team).status_code == 403
    with world.rt.db.session(AccessContext.system("test"), readonly=True) as s:
        assert s.get(User, world.operator.id) is not None


def test_bad_periods_and_charts_are_clear_4xx(world: World) -> None:
    c = world.login(world.supervisor)
    base = f"/api/v1/accounts/{world.plumber.id}"
    r = c.get(f"{base}/stats", params={"start": "2026-03-10", "end": "2026-03-01"})
    assert r.status_code == 422
    assert "end" in r.json()["message"]
    r = c.get(f"{base}/stats", params={"start": "2024-01-01", "end": "2026-03-01"})
    assert r.status_code == 422
    assert c.get(f"{base}/charts/pie.svg").status_code == 404
    assert c.get(f"{base}/usage/2026-13").status_code == 422
    assert c.get(f"{base}/usage/march").status_code == 422


def test_supervision_pages(world: World) -> None:
    sup = world.login(world.supervisor)
    page = sup.get("/supervision")
    assert page.status_code == 200
    assert "Tableau de bord en direct" in page.text
    # Reloaded by our script (data-refresh); without JavaScript by a meta refresh inside
    # <noscript> (a meta refresh in the page is flagged by axe as critical).
    assert 'data-refresh="' in page.text
    assert '<noscript><meta http-equiv="refresh"' in page.text
    assert page.text.count('http-equiv="refresh"') == 1
    # Works without JavaScript (meta refresh, SVG images); the only scripts are the
    # interface's own files, never inline (the CSP forbids inline scripts).
    scripts = re.findall(r"<script[^>]*>", page.text)
    assert scripts and all('src="/static/' in tag for tag in scripts)
    assert f"/api/v1/accounts/{world.plumber.id}/charts/volume-by-day.svg" in page.text
    assert world.login(world.operator).get("/supervision").status_code == 403
    anonymous = world.client().get("/supervision", follow_redirects=False)
    assert anonymous.status_code in (302, 303)  # pages send strangers to the sign-in page
    assert anonymous.headers["location"].startswith("/connexion")

    account = f"/supervision/accounts/{world.plumber.id}"
    client = world.login(world.client_plumber)
    mine = client.get(account)
    assert mine.status_code == 200
    assert "Statistiques" in mine.text
    assert "charts/answer-times.svg" in mine.text
    assert "/usage/" in mine.text
    assert world.login(world.client_medical).get(account).status_code == 404
