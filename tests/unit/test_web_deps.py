"""Who is calling (web/deps.py), without a server or a database: the session cookie, the CSRF
header on state-changing methods, the few-second session memory, API keys, and the account in
the path. The database-backed halves (resolve_session, resolve_api_key) are replaced by fakes
that count their calls; tests/web/test_auth.py walks the same rules through real requests."""

from __future__ import annotations

import asyncio
import types
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from starlette.requests import Request

from permanence.context import Role
from permanence.errors import NotAuthenticated, NotFound, PermissionDenied
from permanence.web import deps

USER = uuid.UUID("22222222-2222-4222-8222-222222222222")
ACCOUNT = uuid.UUID("11111111-1111-4111-8111-111111111111")
OTHER = uuid.UUID("33333333-3333-4333-8333-333333333333")


class FakeAuth:
    """Stands for permanence.staff.auth: sessions and keys by token, calls counted."""

    def __init__(self) -> None:
        self.sessions: dict[str, tuple[Any, Any]] = {}
        self.resolved: list[str] = []
        self.touched: list[str] = []
        self.stale = False
        self.keys: list[str] = []

    def add(self, token: str, csrf: str | None, user_id: uuid.UUID = USER) -> None:
        user = types.SimpleNamespace(id=user_id, role=Role.OPERATOR, account_id=None)
        self.sessions[token] = (user, types.SimpleNamespace(csrf_token=csrf))

    def resolve_session(self, s: object, token: str) -> tuple[Any, Any]:
        self.resolved.append(token)
        if token not in self.sessions:
            raise NotAuthenticated("sign in again")
        return self.sessions[token]

    def needs_touch(self, ws: object) -> bool:
        return self.stale

    def touch(self, s: object, token: str) -> None:
        self.touched.append(token)

    def resolve_api_key(self, s: object, presented: str) -> Any:
        self.keys.append(presented)
        return types.SimpleNamespace(
            id=OTHER, account_id=ACCOUNT, scopes="messages:read calls:write", name="crm"
        )


class FakeDb:
    def __init__(self) -> None:
        self.readonly: list[bool] = []

    @contextmanager
    def session(self, ctx: object, readonly: bool = False) -> Iterator[object]:
        self.readonly.append(readonly)
        yield object()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAuth]:
    fake = FakeAuth()
    for name in ("resolve_session", "needs_touch", "touch", "resolve_api_key"):
        monkeypatch.setattr(deps.auth, name, getattr(fake, name))
    clock = [1000.0]
    monkeypatch.setattr(deps.time, "monotonic", lambda: clock[0])
    fake.clock = clock  # type: ignore[attr-defined]
    deps._recent.clear()
    yield fake
    deps._recent.clear()


RT: Any = types.SimpleNamespace(db=FakeDb())


def request(method: str = "GET", token: str | None = "tok", **headers: str) -> Request:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    if token is not None:
        raw.append((b"cookie", f"{deps.SESSION_COOKIE}={token}".encode()))
    return Request(
        {"type": "http", "method": method, "headers": raw, "path": "/", "query_string": b""}
    )


# --- session cookie and CSRF -------------------------------------------------------------------


def test_no_cookie_is_not_signed_in(fake: FakeAuth) -> None:
    with pytest.raises(NotAuthenticated, match="sign in first"):
        deps.principal(request(token=None), RT)
    with pytest.raises(NotAuthenticated, match="sign in first"):
        deps.principal(request(token=""), RT)
    assert fake.resolved == []


def test_a_session_becomes_the_principal(fake: FakeAuth) -> None:
    fake.add("tok", "c" * 32)
    p = deps.principal(request(), RT)
    assert (p.user_id, p.role, p.account_id, p.scopes) == (USER, Role.OPERATOR, None, None)
    assert (p.session_token, p.csrf_token) == ("tok", "c" * 32)
    assert RT.db.readonly[-1] is True  # resolving a session writes nothing


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_safe_methods_need_no_csrf_header(fake: FakeAuth, method: str) -> None:
    fake.add("tok", "c" * 32)
    assert deps.principal(request(method), RT).user_id == USER


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_state_changing_methods_need_the_session_csrf_token(fake: FakeAuth, method: str) -> None:
    fake.add("tok", "c" * 32)
    with pytest.raises(PermissionDenied, match="CSRF"):
        deps.principal(request(method), RT)
    with pytest.raises(PermissionDenied, match="CSRF"):
        deps.principal(request(method, x_csrf_token="c" * 31 + "d"), RT)
    assert deps.principal(request(method, x_csrf_token="c" * 32), RT).user_id == USER


@pytest.mark.parametrize("csrf", [None, ""])
def test_a_session_without_a_csrf_token_cannot_post_even_an_empty_header(
    fake: FakeAuth, csrf: str | None
) -> None:
    fake.add("tok", csrf)
    with pytest.raises(PermissionDenied, match="CSRF"):
        deps.principal(request("POST", x_csrf_token=""), RT)
    with pytest.raises(PermissionDenied, match="CSRF"):
        deps.principal(request("POST"), RT)


# --- the few-second memory ------------------------------------------------------------------


def test_the_memory_key_is_the_sha256_of_the_token() -> None:
    # The token itself is never kept in memory, only its digest (sha256 of b"tok").
    assert deps._key("tok") == "1a7674eb4ee78df7e1ac439a93c3fa8e3c945784d4dec9fd8e3011738b2f1d62"


def test_a_session_is_looked_up_once_per_recheck_window(fake: FakeAuth) -> None:
    fake.add("tok", "c")
    deps.principal(request(), RT)
    fake.clock[0] += deps.RECHECK_SECONDS  # type: ignore[attr-defined]
    deps.principal(request(), RT)
    assert fake.resolved == ["tok"]  # at exactly the window: still remembered
    fake.clock[0] += 0.001  # type: ignore[attr-defined]
    deps.principal(request(), RT)
    assert fake.resolved == ["tok", "tok"]
    assert deps.RECHECK_SECONDS == 5.0  # docs/adr/0006: a revocation elsewhere within 5 s


def test_a_session_seen_long_ago_is_looked_up_again(fake: FakeAuth) -> None:
    fake.add("tok", "c")
    deps.principal(request(), RT)  # at 1000 s
    fake.clock[0] = 2000.0  # type: ignore[attr-defined]
    deps.principal(request(), RT)
    assert fake.resolved == ["tok", "tok"]


def test_a_revoked_session_fails_once_forgotten(fake: FakeAuth) -> None:
    fake.add("tok", "c")
    deps.principal(request(), RT)
    del fake.sessions["tok"]
    assert deps.principal(request(), RT).user_id == USER  # remembered
    deps.forget_session("tok")
    with pytest.raises(NotAuthenticated):
        deps.principal(request(), RT)
    deps.forget_session("never-seen")  # forgetting twice or an unknown token is harmless


def test_forget_user_forgets_only_that_users_sessions(fake: FakeAuth) -> None:
    higher = uuid.UUID("44444444-4444-4444-8444-444444444444")
    lower = uuid.UUID("00000000-0000-4000-8000-000000000001")
    fake.add("a1", "c")
    fake.add("a2", "c")
    fake.add("b1", "c", user_id=higher)
    fake.add("c1", "c", user_id=lower)
    for token in ("a1", "a2", "b1", "c1"):
        deps.principal(request(token=token), RT)
    deps.forget_user(uuid.UUID(str(USER)))  # an equal id, not the same object
    assert set(deps._recent) == {deps._key("b1"), deps._key("c1")}


def test_last_seen_is_written_only_when_stale(fake: FakeAuth) -> None:
    fake.add("tok", "c")
    deps.principal(request(), RT)
    assert fake.touched == []
    deps.forget_session("tok")
    fake.stale = True
    deps.principal(request(), RT)
    assert fake.touched == ["tok"]
    assert RT.db.readonly[-1] is False  # the touch is a write


def test_the_memory_is_bounded_stale_entries_first(
    fake: FakeAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deps, "_MAX_REMEMBERED", 3)
    for token in ("old", "edge", "new1", "new2", "new3"):
        fake.add(token, "c")
    deps.principal(request(token="old"), RT)  # at 1000 s
    fake.clock[0] = 1995.0  # type: ignore[attr-defined]
    deps.principal(request(token="edge"), RT)
    fake.clock[0] = 2000.0  # type: ignore[attr-defined]
    deps.principal(request(token="new1"), RT)
    assert len(deps._recent) == 3
    # Full: what is older than RECHECK_SECONDS goes; "edge", exactly that old, stays.
    deps.principal(request(token="new2"), RT)
    assert set(deps._recent) == {deps._key(t) for t in ("edge", "new1", "new2")}
    deps.principal(request(token="new3"), RT)  # full of fresh ones: start again
    assert set(deps._recent) == {deps._key("new3")}


def test_a_large_memory_full_of_fresh_sessions_starts_again(
    fake: FakeAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deps, "_MAX_REMEMBERED", 300)
    fresh = deps.Principal(user_id=USER, role=Role.OPERATOR, account_id=None, scopes=None)
    for i in range(300):
        deps._recent[f"k{i}"] = (1000.0, fresh)
    fake.add("tok", "c")
    deps.principal(request(), RT)
    assert set(deps._recent) == {deps._key("tok")}


def test_a_large_memory_is_bounded_too(fake: FakeAuth, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond CPython's shared small integers: the bound is compared by value."""
    monkeypatch.setattr(deps, "_MAX_REMEMBERED", 300)
    stale = deps.Principal(user_id=USER, role=Role.OPERATOR, account_id=None, scopes=None)
    for i in range(300):
        deps._recent[f"k{i}"] = (0.0, stale)
    fake.add("tok", "c")
    deps.principal(request(), RT)
    assert set(deps._recent) == {deps._key("tok")}


# --- the routes' dependency: a remembered session without a worker thread ------------------


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls ``current_principal`` hands to a worker thread (run inline here)."""
    handed: list[str] = []

    async def inline(fn: Any, *args: Any) -> Any:
        handed.append(fn.__name__)
        return fn(*args)

    monkeypatch.setattr(deps, "run_in_threadpool", inline)
    return handed


def current(req: Request) -> deps.Principal:
    return asyncio.run(deps.current_principal(req, RT))


def test_a_remembered_session_is_answered_without_a_worker_thread(
    fake: FakeAuth, threads: list[str]
) -> None:
    fake.add("tok", "c" * 32)
    assert current(request("POST", x_csrf_token="c" * 32)).user_id == USER
    looked_up = ["_check_session"]  # the database only, in a thread; the CSRF check here
    assert (threads, fake.resolved) == (looked_up, ["tok"])  # looked up once, in a thread
    for _ in range(3):
        assert current(request("POST", x_csrf_token="c" * 32)).user_id == USER
    assert (threads, fake.resolved) == (looked_up, ["tok"])  # then from memory, inline
    fake.clock[0] += deps.RECHECK_SECONDS + 0.001  # type: ignore[attr-defined]
    current(request())
    assert (threads, fake.resolved) == (looked_up * 2, ["tok", "tok"])


def test_a_session_not_remembered_is_asked_of_the_memory_once(
    fake: FakeAuth, threads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One hash of the token and one look-up in the memory per request, remembered or not
    (a miss was looked up again in the worker thread, and the token hashed three times)."""
    hashed: list[str] = []
    asked: list[str] = []
    real_key, real_recently_checked = deps._key, deps._recently_checked

    def key(token: str) -> str:
        hashed.append(token)
        return real_key(token)

    def recently_checked(k: str) -> deps.Principal | None:
        asked.append(k)
        return real_recently_checked(k)

    monkeypatch.setattr(deps, "_key", key)
    monkeypatch.setattr(deps, "_recently_checked", recently_checked)
    fake.add("tok", "c" * 32)
    assert current(request("POST", x_csrf_token="c" * 32)).user_id == USER  # a miss
    assert (hashed, asked, fake.resolved) == (["tok"], [real_key("tok")], ["tok"])
    assert current(request("POST", x_csrf_token="c" * 32)).user_id == USER  # remembered
    assert (len(hashed), len(asked), fake.resolved) == (2, 2, ["tok"])
    # A miss whose CSRF token is wrong: looked up (and remembered), then refused, as before.
    deps._recent.clear()
    with pytest.raises(PermissionDenied, match="CSRF"):
        current(request("POST", x_csrf_token="c" * 31 + "d"))
    assert (len(hashed), len(asked), fake.resolved) == (3, 3, ["tok", "tok"])
    assert real_key("tok") in deps._recent
    # Unknown, expired or revoked: 401 from the lookup, before any CSRF check; not remembered.
    with pytest.raises(NotAuthenticated, match="sign in again"):
        current(request("POST", token="gone"))
    assert real_key("gone") not in deps._recent


def test_the_remembered_path_checks_the_csrf_token_and_a_sign_out_at_once(
    fake: FakeAuth, threads: list[str]
) -> None:
    fake.add("tok", "c" * 32)
    current(request())
    with pytest.raises(PermissionDenied, match="CSRF"):
        current(request("POST"))
    with pytest.raises(PermissionDenied, match="CSRF"):
        current(request("POST", x_csrf_token="c" * 31 + "d"))
    with pytest.raises(NotAuthenticated, match="sign in first"):
        current(request(token=None))
    del fake.sessions["tok"]  # revoked: signing out here forgets it in this process at once
    deps.forget_session("tok")
    with pytest.raises(NotAuthenticated):
        current(request())
    assert fake.resolved == ["tok", "tok"]


def test_a_users_changed_credentials_take_effect_at_once(
    fake: FakeAuth, threads: list[str]
) -> None:
    """A password or MFA change (``forget_user``) is seen by the very next request."""
    fake.add("tok", "c")
    current(request())
    fake.sessions["tok"][0].role = Role.SUPERVISOR
    assert current(request()).role is Role.OPERATOR  # remembered, as before
    deps.forget_user(USER)
    assert current(request()).role is Role.SUPERVISOR


def test_an_api_key_is_always_looked_up_in_a_worker_thread(
    fake: FakeAuth, threads: list[str]
) -> None:
    for _ in range(2):
        p = current(request("POST", token="tok", authorization="Bearer pk_live_x"))
        assert p.key_id == OTHER
    assert threads == ["principal", "principal"] and fake.keys == ["pk_live_x", "pk_live_x"]


# --- API keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Bearer pk_live_x", "bearer pk_live_x", "BEARER   pk_live_x  "])
def test_an_api_key_is_taken_from_the_bearer_header(fake: FakeAuth, header: str) -> None:
    p = deps.principal(request("POST", token=None, authorization=header), RT)
    assert fake.keys == ["pk_live_x"]
    assert (p.user_id, p.role, p.account_id, p.key_id, p.key_name) == (
        None,
        Role.CLIENT,
        ACCOUNT,
        OTHER,
        "crm",
    )
    assert p.scopes == frozenset({"messages:read", "calls:write"})  # no CSRF for a key
    assert RT.db.readonly[-1] is True  # resolving a key writes nothing


def test_another_scheme_is_not_an_api_key(fake: FakeAuth) -> None:
    with pytest.raises(NotAuthenticated):
        deps.principal(request(token=None, authorization="Basic pk_live_x"), RT)
    assert fake.keys == []


# --- roles, scopes and the account in the path ------------------------------------------------


def _principal(role: Role, account: uuid.UUID | None, scopes: frozenset[str] | None = None) -> Any:
    return deps.Principal(user_id=USER, role=role, account_id=account, scopes=scopes)


def _check(p: Any, *roles: Role, scope: str | None = None, account: object = None) -> Any:
    req = request()
    if account is not None:
        req.scope["path_params"] = {"account_id": str(account)}
    return asyncio.run(deps.require(*roles, scope=scope)(req, p))


def test_a_client_naming_another_account_gets_a_404_before_any_role_check() -> None:
    client = _principal(Role.CLIENT, ACCOUNT)
    with pytest.raises(NotFound, match="no such account"):
        _check(client, Role.OPERATOR, account=OTHER)
    with pytest.raises(PermissionDenied, match="role"):
        _check(client, Role.OPERATOR, account=ACCOUNT)
    assert _check(client, Role.CLIENT, account=ACCOUNT) is client
    assert _check(client, Role.CLIENT) is client


def test_staff_may_name_any_account_their_role_allows() -> None:
    for role in (Role.OPERATOR, Role.SUPERVISOR, Role.DPO, Role.ADMIN):
        staff = _principal(role, None)
        assert staff.is_staff
        assert _check(staff, role, account=OTHER) is staff
        with pytest.raises(PermissionDenied):
            _check(staff, Role.CLIENT, account=OTHER)
    assert not _principal(Role.CLIENT, ACCOUNT).is_staff
    assert not _principal(Role.SYSTEM, None).is_staff


def test_an_api_key_needs_the_routes_scope_whatever_the_roles() -> None:
    key = _principal(Role.CLIENT, ACCOUNT, frozenset({"messages:read"}))
    assert _check(key, Role.OPERATOR, scope="messages:read", account=ACCOUNT) is key
    with pytest.raises(PermissionDenied, match="scope"):
        _check(key, Role.CLIENT, scope="calls:write", account=ACCOUNT)
    with pytest.raises(PermissionDenied, match="scope"):
        _check(key, Role.CLIENT, account=ACCOUNT)  # a route without a scope: no key
    with pytest.raises(NotFound):
        _check(key, Role.CLIENT, scope="messages:read", account=OTHER)


LOWER = uuid.UUID("00000000-0000-4000-8000-000000000001")


@pytest.mark.parametrize("other", [OTHER, LOWER])  # sorting after and before ACCOUNT
def test_another_account_is_a_404_whichever_way_its_id_sorts(other: uuid.UUID) -> None:
    client = _principal(Role.CLIENT, ACCOUNT)
    with pytest.raises(NotFound):
        _check(client, Role.CLIENT, account=other)
    with pytest.raises(NotFound):
        deps.account_context(client, other, "x")


def test_a_principal_cannot_be_changed_once_made() -> None:
    import dataclasses

    p = _principal(Role.CLIENT, ACCOUNT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.role = Role.ADMIN  # type: ignore[misc]


def test_account_context_carries_the_account_and_reason() -> None:
    client = _principal(Role.CLIENT, ACCOUNT)
    ctx = deps.account_context(client, uuid.UUID(str(ACCOUNT)), "call.answer")  # equal, not same
    assert (ctx.account_id, ctx.reason, ctx.role, ctx.actor_id) == (
        ACCOUNT,
        "call.answer",
        Role.CLIENT,
        USER,
    )
    with pytest.raises(NotFound):
        deps.account_context(client, OTHER, "call.answer")
    staff = _principal(Role.OPERATOR, None)
    assert deps.account_context(staff, OTHER, "x").account_id == OTHER


def test_cookies_are_secure_over_https_only() -> None:
    https = Request(
        {"type": "http", "scheme": "https", "server": ("h", 443), "path": "/", "headers": []}
    )
    http = Request(
        {"type": "http", "scheme": "http", "server": ("h", 80), "path": "/", "headers": []}
    )
    assert deps.secure_cookies(https) is True
    assert deps.secure_cookies(http) is False
    ws = Request({"type": "http", "scheme": "ws", "server": ("h", 80), "path": "/", "headers": []})
    assert deps.secure_cookies(ws) is False
