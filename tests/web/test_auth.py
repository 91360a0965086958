"""Signing in: TOTP for staff, no replay, throttling, sessions, CSRF, API keys."""

from __future__ import annotations

from permanence.context import Role
from tests.web.conftest import PASSWORD, World


def test_staff_need_their_totp_code(world: World) -> None:
    c = world.client()
    r = c.post("/api/v1/auth/login", json={"email": world.operator.email, "password": PASSWORD})
    assert r.status_code == 401
    assert r.json()["message"] == "e-mail, password or code not recognised"
    r = c.post(
        "/api/v1/auth/login",
        json={"email": world.operator.email, "password": PASSWORD, "totp": world.operator.code()},
    )
    assert r.status_code == 200
    assert r.json()["role"] == "operator"
    assert c.get("/api/v1/me").json()["email"] == world.operator.email


def test_a_totp_code_is_accepted_once(world: World) -> None:
    code = world.operator.code()
    body = {"email": world.operator.email, "password": PASSWORD, "totp": code}
    assert world.client().post("/api/v1/auth/login", json=body).status_code == 200
    assert world.client().post("/api/v1/auth/login", json=body).status_code == 401


def test_failed_sign_ins_are_slowed_not_locked(world: World) -> None:
    c = world.client()
    bad = {"email": world.client_medical.email, "password": "pas le bon mot de passe"}
    codes = [c.post("/api/v1/auth/login", json=bad).status_code for _ in range(7)]
    assert codes[:5] == [401] * 5
    assert 429 in codes[5:]
    r = c.post("/api/v1/auth/login", json=bad)
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    # Even the right password waits: the throttle comes before any check.
    good = {"email": world.client_medical.email, "password": PASSWORD}
    assert c.post("/api/v1/auth/login", json=good).status_code == 429


def test_unknown_email_gets_the_same_answer(world: World) -> None:
    r = world.client().post(
        "/api/v1/auth/login", json={"email": "personne@nulle.part", "password": "x" * 10}
    )
    assert r.status_code == 401
    assert r.json()["message"] == "e-mail, password or code not recognised"


def test_each_sign_in_gets_a_new_session_and_logout_ends_it(world: World) -> None:
    first = world.login(world.client_medical)
    second = world.login(world.client_medical)
    a, b = first.cookies.get("permanence_session"), second.cookies.get("permanence_session")
    assert a and b and a != b
    assert first.post("/api/v1/auth/logout").status_code == 204
    stale = world.client()
    stale.cookies.set("permanence_session", a)
    assert stale.get("/api/v1/me").status_code == 401
    assert second.get("/api/v1/me").status_code == 200


def test_a_planted_session_id_is_not_adopted(world: World) -> None:
    c = world.client()
    r = c.post(
        "/api/v1/auth/login",
        json={"email": world.client_medical.email, "password": PASSWORD},
        headers={"Cookie": "permanence_session=chosen-by-the-attacker"},
    )
    assert r.status_code == 200
    issued = r.cookies.get("permanence_session")
    assert issued and issued != "chosen-by-the-attacker"
    planted = world.client()
    planted.cookies.set("permanence_session", "chosen-by-the-attacker")
    assert planted.get("/api/v1/me").status_code == 401


def test_state_changes_need_the_csrf_token(world: World) -> None:
    c = world.login(world.operator)
    del c.headers["X-CSRF-Token"]
    r = c.post("/api/v1/calls", json={"dialled": "+33478000001", "caller_number": "0199001234"})
    assert r.status_code == 403
    assert "CSRF" in r.json()["message"]


def test_a_wrong_csrf_token_is_refused_like_a_missing_one(world: World) -> None:
    c = world.login(world.operator)
    right = c.headers["X-CSRF-Token"]
    for wrong in ("x", right[:-1], right + "0", right.upper() if right != right.upper() else "y"):
        c.headers["X-CSRF-Token"] = wrong
        r = c.post("/api/v1/calls", json={"dialled": "+33478000001", "caller_number": "0199001234"})
        assert r.status_code == 403, wrong
        assert "CSRF" in r.json()["message"]
    c.headers["X-CSRF-Token"] = right
    r = c.post("/api/v1/calls", json={"dialled": "+33478000001", "caller_number": "0199001234"})
    assert r.status_code != 403


def test_api_key_needs_recent_reauthentication_and_respects_scopes(world: World) -> None:
    c = world.login(world.client_plumber)
    url = f"/api/v1/accounts/{world.plumber.id}/api-keys"
    body = {"name": "CRM", "scopes": ["messages:read"]}
    created = c.post(url, json=body)  # signed in a moment ago: recent enough
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    assert secret.startswith("pmk_")
    k = world.client()
    k.headers["Authorization"] = f"Bearer {secret}"
    assert k.get(f"/api/v1/accounts/{world.plumber.id}/messages").status_code == 200
    assert k.get(f"/api/v1/accounts/{world.medical.id}/messages").status_code == 404
    r = k.get(f"/api/v1/accounts/{world.plumber.id}/availability", params={"day": "2030-01-07"})
    assert r.status_code == 403
    listed = c.get(url).json()
    assert all(item["secret"] is None for item in listed)
    key_id = created.json()["id"]
    assert c.delete(f"{url}/{key_id}").status_code == 204
    assert k.get(f"/api/v1/accounts/{world.plumber.id}/messages").status_code == 401


def test_roles_are_enforced(world: World) -> None:
    client = world.login(world.client_medical)
    r = client.post("/api/v1/calls", json={"dialled": "+33478000001"})
    assert r.status_code == 403
    assert world.client_medical.role is Role.CLIENT


def test_a_nul_character_anywhere_is_a_clear_422(world: World) -> None:
    c = world.client()
    r = c.post("/api/v1/auth/login", json={"email": "a\u0000@b.fr", "password": "x" * 10})
    assert r.status_code == 422
    assert "NUL" in r.json()["message"]
    assert c.get("/api/v1/accounts", params={"x": "a\x00b"}).status_code == 422
    form = c.post("/connexion", data={"email": "a\x00b", "password": "y"})
    assert form.status_code == 422


def test_the_session_cookie_is_secure_when_the_scheme_is_https(world: World) -> None:
    """Secure when the request's scheme is https (directly or through a proxy uvicorn trusts,
    tests/e2e/test_reverse_proxy.py); a forwarded header on its own (an untrusted peer: uvicorn
    has not turned it into the scheme) changes nothing."""
    from fastapi.testclient import TestClient

    who = world.client_plumber
    body = {"email": who.email, "password": PASSWORD}

    def cookie(client: TestClient, **headers: str) -> str:
        r = client.post("/api/v1/auth/login", json=body, headers=headers)
        assert r.status_code == 200, r.text
        return r.headers["set-cookie"]

    assert "secure" not in cookie(world.client()).lower()
    assert "secure" not in cookie(world.client(), **{"X-Forwarded-Proto": "https"}).lower()
    over_https = TestClient(world.app, base_url="https://testserver")  # type: ignore[arg-type]
    assert "; secure" in cookie(over_https).lower()
