"""Role separation: no role reaches personal data through another role's tools.

The administrator may not read a client's messages; neither may they (nor an operator, a
supervisor, the DPO, or a user of another account) mint an API key that does. Reads through
a key are audited under the key's id and name, and breach scoping finds them.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import create_engine, pool, select, text
from sqlalchemy.exc import DBAPIError

from permanence.audit.model import AuditEntry
from permanence.breaches import service as breaches
from permanence.context import AccessContext, Role
from permanence.staff.auth import PERSONAL_DATA_SCOPES, SCOPES
from permanence.staff.model import ApiKey
from tests.conftest import PG_APP_ROLE, PG_OWNER_URL, PG_URL
from tests.web.conftest import World
from tests.web.isolation import send
from tests.web.test_isolation_matrix import _cases, _setup

# What the isolation matrix's set-up wrote about its caller: none of it may reach a role
# that is not meant to read it.
PERSONAL = ("Martin", "0199001234", "rue A", "Fuite")


def _key(world: World, who: Any, scopes: list[str], account: Any = None) -> Any:
    c = world.login(who)
    return c.post(
        f"/api/v1/accounts/{(account or world.plumber).id}/api-keys",
        json={"name": "Intégration CRM", "scopes": scopes},
    )


@pytest.mark.gdpr("Art. 25")
@pytest.mark.parametrize("scope", sorted(PERSONAL_DATA_SCOPES))
def test_only_the_accounts_own_users_mint_a_key_that_reads_personal_data(
    world: World, scope: str
) -> None:
    refused = {
        "admin": (world.admin, 403),
        "supervisor": (world.supervisor, 403),
        "dpo": (world.dpo, 403),
        "operator": (world.operator, 403),
        "client of another account": (world.client_medical, 404),
    }
    got = {name: _key(world, who, [scope]).status_code for name, (who, _) in refused.items()}
    assert got == {name: status for name, (_, status) in refused.items()}
    r = _key(world, world.admin, ["messages:write", scope])
    assert r.status_code == 403 and scope in r.json()["message"]
    assert _key(world, world.client_plumber, [scope]).status_code == 201
    with world.rt.db.session(AccessContext.system("test", world.plumber.id)) as s:
        assert [k.scopes for k in s.scalars(select(ApiKey))] == [scope]


@pytest.mark.gdpr("Art. 25")
def test_no_role_reaches_personal_data_through_another_roles_tools(world: World) -> None:
    """The matrix: every account route, through every tool a role other than the data's
    readers holds (an administrator's key with every scope they may grant, a user of another
    account, the administrator's own session): no answer carries the caller's data."""
    o = _setup(world)
    allowed = sorted(SCOPES - PERSONAL_DATA_SCOPES)
    r = _key(world, world.admin, allowed)
    assert r.status_code == 201, r.text
    admin_key = world.client()
    admin_key.headers["Authorization"] = f"Bearer {r.json()['secret']}"
    tools = {
        "administrator's key": admin_key,
        "administrator": world.login(world.admin),
        "client of another account": world.login(world.client_medical),
    }
    leaks, reached = [], 0
    for method, template, _owner, body in _cases(o):
        path = template.format(a=world.plumber.id)
        for name, c in tools.items():
            res = send(c, method, path, body)
            reached += 200 <= res.status_code < 300
            found = [p for p in PERSONAL if p in res.text]
            if found:
                leaks.append(f"{name}: {method} {template} -> {res.status_code} {found}")
    assert leaks == []
    assert reached > 0  # the key does work where its scopes allow (acknowledge, move…)
    # The caller's data is there for its readers: the test would see a leak.
    own = world.login(world.client_plumber)
    page = own.get(f"/api/v1/accounts/{world.plumber.id}/messages/{o.message}").text
    assert "Martin" in page


@pytest.mark.gdpr("Art. 5(2)")
def test_reads_through_a_key_are_audited_under_the_key(world: World) -> None:
    o = _setup(world)  # (its helpers also write rows directly, under test contexts)
    with world.rt.db.session(AccessContext.system("test"), readonly=True) as s:
        before = s.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) or 0
    world.login(world.operator).get(f"/api/v1/accounts/{world.plumber.id}/messages")
    r = _key(world, world.client_plumber, ["messages:read"])
    assert r.status_code == 201
    key = r.json()
    c = world.client()
    c.headers["Authorization"] = f"Bearer {key['secret']}"
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    got = c.get(f"/api/v1/accounts/{world.plumber.id}/messages/{o.message}")
    assert got.status_code == 200 and "Martin" in got.text
    with world.rt.db.session(AccessContext.system("test"), readonly=True) as s:
        entries = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.actor_id == uuid.UUID(key["id"]))
            .order_by(AuditEntry.seq)
        ).all()
        assert entries, "the key's read is not under the key's id"
        body = json.loads(entries[-1].body)
        assert body["actor_kind"] == "api_key"
        assert body["actor"] == key["id"]
        assert body["key_name"] == "Int_gration_CRM"  # the name, as a code
        assert body["role"] == "client"
        # Every entry written through the API names a user or a key, except the system's own
        # work (sign-in attempts, background delivery).
        nameless = s.scalars(
            select(AuditEntry.body).where(AuditEntry.actor_id.is_(None), AuditEntry.seq > before)
        ).all()
        roles = {json.loads(b)["role"] for b in nameless}
        assert roles <= {"system"}, roles
    # Breach scoping by actor finds what the key read.
    now = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    with world.rt.db.session(AccessContext(role=Role.DPO, reason="test")) as s:
        scope = breaches.reads_by_actor(s, uuid.UUID(key["id"]), start, now)
    assert [str(x.subject_id) for x in scope.subjects] == [o.caller]


def _as_app_role(sql: str, settings: dict[str, str] | None = None, **params: object) -> Any:
    assert PG_URL
    engine = create_engine(PG_URL, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            for k, v in (settings or {}).items():
                conn.execute(text("SELECT set_config(:k, :v, true)"), {"k": k, "v": v})
            return conn.execute(text(sql), params).all()
    finally:
        engine.dispose()


@pytest.mark.gdpr("Art. 25")
@pytest.mark.skipif(not (PG_URL and PG_APP_ROLE), reason="row-level security: PostgreSQL")
def test_api_keys_are_under_row_level_security(world: World) -> None:
    mine = _key(world, world.client_plumber, ["messages:read"]).json()
    theirs = _key(world, world.client_medical, ["messages:read"], world.medical).json()
    sql = "SELECT id::text FROM api_keys ORDER BY id"
    assert _as_app_role(sql) == []  # no account, no key named: nothing (fails closed)
    plumber = _as_app_role(sql, settings={"app.account_id": str(world.plumber.id)})
    assert [r[0] for r in plumber] == [mine["id"]]
    # The lookup of a presented key reads that key only, and cannot change it.
    named = _as_app_role(sql, settings={"app.api_key_id": theirs["id"]})
    assert [r[0] for r in named] == [theirs["id"]]
    changed = _as_app_role(
        "UPDATE api_keys SET scopes = 'rights:manage' WHERE id = :k RETURNING id",
        settings={"app.api_key_id": theirs["id"]},
        k=theirs["id"],
    )
    assert changed == []
    # Both keys still work through the API (resolved before the account is known).
    for k, account in ((mine, world.plumber), (theirs, world.medical)):
        c = world.client()
        c.headers["Authorization"] = f"Bearer {k['secret']}"
        assert c.get(f"/api/v1/accounts/{account.id}/messages").status_code == 200


@pytest.mark.skipif(not (PG_URL and PG_APP_ROLE), reason="grants and triggers: PostgreSQL")
def test_the_application_role_moves_the_audit_head_only_by_appending(world: World) -> None:
    _key(world, world.client_plumber, ["messages:read"])
    head = _as_app_role("SELECT seq, hash FROM audit_head")[0]
    assert head[0] > 2
    previous = _as_app_role("SELECT hash FROM audit_log WHERE seq = :s", s=head[0] - 1)[0][0]
    attempts = {
        "rewind": ("UPDATE audit_head SET seq = :s, hash = :h", {"s": head[0] - 1, "h": previous}),
        "forge": ("UPDATE audit_head SET hash = :h", {"h": "f" * 64}),
        "delete": ("DELETE FROM audit_head", {}),
        "insert": ("INSERT INTO audit_head (id, seq, hash) VALUES (2, 0, :h)", {"h": "0" * 64}),
        "truncate": ("TRUNCATE audit_head", {}),
    }
    refused = []
    for name, (sql, params) in attempts.items():
        try:
            _as_app_role(sql + " RETURNING 1" if sql.startswith("UPDATE") else sql, **params)
        except DBAPIError:
            refused.append(name)
    assert refused == list(attempts)
    assert _as_app_role("SELECT seq, hash FROM audit_head")[0] == head
    # The append path still moves it.
    _key(world, world.client_plumber, ["messages:read"])
    assert _as_app_role("SELECT seq FROM audit_head")[0][0] > head[0]
    # The owner is held to the same rule (the trigger): a rewind is refused at commit.
    assert PG_OWNER_URL
    engine = create_engine(PG_OWNER_URL, poolclass=pool.NullPool)
    try:
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text("UPDATE audit_head SET seq = seq - 1"))
    finally:
        engine.dispose()


def test_the_evidence_pack_is_for_the_dpo_desk_only(world: World) -> None:
    from tests.web.pages_helpers import page_login

    for who in (world.operator, world.supervisor, world.client_plumber):
        c, _ = page_login(world, who)
        assert c.get("/dpo/dossier-de-preuves.zip").status_code == 403
    dpo, _ = page_login(world, world.dpo)
    r = dpo.get("/dpo/dossier-de-preuves.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert "attachment" in r.headers["content-disposition"]


def test_the_dpo_records_an_audit_and_closes_its_action_from_the_page(world: World) -> None:
    import datetime as dt

    from tests.web.pages_helpers import csrf_of, page_login

    today = dt.datetime.now(dt.UTC).date()
    op, _ = page_login(world, world.operator)
    assert op.get("/dpo/audits").status_code == 403
    dpo, _ = page_login(world, world.dpo)
    page = dpo.get("/dpo/audits").text
    assert "Aucun audit enregistré" in page
    form = {
        "csrf_token": csrf_of(page),
        "cible": "service",
        "date": (today - dt.timedelta(days=400)).isoformat(),
        "perimetre": "Revue des accès",
        "constats": "Appel de Camille Martin au 06 12 34 56 78",
        "prochain": (today - dt.timedelta(days=30)).isoformat(),
        "action": "Désactiver les comptes inactifs",
        "responsable": world.dpo.email,
        "echeance": (today - dt.timedelta(days=1)).isoformat(),
    }
    refused = dpo.post("/dpo/audits", data=form)
    assert refused.status_code == 422
    assert "Les constats contiennent des données personnelles" in refused.text
    assert "Revue des accès" in refused.text  # what was typed is kept
    form["constats"] = "Comptes inactifs non désactivés"
    assert dpo.post("/dpo/audits", data=form).status_code == 303
    page = dpo.get("/dpo/audits?fait=audit").text
    assert "Audit enregistré." in page and "prochain audit en retard" in page
    assert "Désactiver les comptes inactifs" in page and "en retard" in page
    action = page.split('action="/dpo/audits/actions/')[1].split("/")[0]
    done = dpo.post(f"/dpo/audits/actions/{action}/fait", data={"csrf_token": csrf_of(page)})
    assert done.status_code == 303
    page = dpo.get("/dpo/audits?fait=action").text
    assert "Action marquée comme faite." in page and "Marquer comme faite" not in page
