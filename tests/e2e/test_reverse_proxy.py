"""deploy/nginx.conf run for real: nginx terminating TLS (a certificate made here), in front of
real ``permanence serve`` processes over the test database. Only the ports, the certificate
paths, the log paths and the replica addresses of the file are changed.

The test client connects from other loopback addresses (127.0.0.5, 127.0.0.6, 127.0.0.9) than
nginx's (127.0.0.1, the one address the replicas trust), so the address the application acts
on tells whether a forwarded header was believed.
"""

from __future__ import annotations

import shutil
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from permanence.config import Settings
from permanence.context import AccessContext, Role
from permanence.runtime import Runtime
from permanence.staff.service import create_user
from permanence.web.deps import RECHECK_SECONDS
from tests.conftest import (
    PG_APP_ROLE,
    PG_OWNER_URL,
    PG_URL,
    TEST_MASTER_KEY,
    _truncate_pg,
    cli_env,
    free_port,
)
from tests.factories import make_account, signed_in_operator
from tests.servers import make_tls_files

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PASSWORD = "mot de passe du client 2026"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(NGINX).exists(), reason="nginx is not installed (.ci/run installs Debian's nginx)"
    ),
]


def spawn_replica(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    """``permanence serve`` as the systemd unit runs it; no background jobs (not under test)."""
    env = {
        **cli_env(settings),
        "PERMANENCE_DELIVERY_INTERVAL": "0",
        "PERMANENCE_RETENTION_INTERVAL_MINUTES": "0",
        "PERMANENCE_FORWARDED_ALLOW_IPS": "127.0.0.1",
        "PERMANENCE_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "permanence", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
    )


def wait_until_up(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the replica exited with status {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the replica did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def nginx_config(work: Path, http: int, https: int, replicas: list[int]) -> Path:
    """deploy/nginx.conf with this run's ports, certificate and replicas, inside a minimal
    main configuration (what /etc/nginx/nginx.conf gives on a server)."""
    ca, cert, key = make_tls_files(work)
    site = NGINX_CONF.read_text()
    upstream = (
        "    server 127.0.0.1:8000 max_fails=3 fail_timeout=10s;\n"
        "    server 127.0.0.1:8001 max_fails=3 fail_timeout=10s;\n"
    )
    changes = {
        upstream: "".join(
            f"    server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;\n" for p in replicas
        ),
        "    listen 80;\n    listen [::]:80;\n": f"    listen 127.0.0.1:{http};\n",
        "    listen 443 ssl http2;\n    listen [::]:443 ssl http2;\n": (
            f"    listen 127.0.0.1:{https} ssl http2;\n"
        ),
        "/etc/ssl/permanence/fullchain.pem": str(cert),
        "/etc/ssl/permanence/privkey.pem": str(key),
        "/var/log/nginx/permanence.access.log": str(work / "access.log"),
    }
    for old, new in changes.items():
        assert old in site, f"deploy/nginx.conf no longer has {old!r}: update this test"
        site = site.replace(old, new)
    (work / "permanence.conf").write_text(site)
    temp = "".join(
        f"    {kind}_temp_path {work / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = work / "nginx.conf"
    main.write_text(
        f"daemon off;\nmaster_process off;\npid {work / 'nginx.pid'};\n"
        f"error_log {work / 'error.log'} warn;\n"
        "events { worker_connections 256; }\n"
        f"http {{\n{temp}    include {work / 'permanence.conf'};\n}}\n"
    )
    (work / "ca.pem").write_bytes(ca.read_bytes())
    return main


@dataclass
class Proxy:
    http: int
    https: int
    replicas: list[int]
    tls: ssl.SSLContext
    work: Path
    procs: list[subprocess.Popen[bytes]]

    def client(self, source: str = "127.0.0.4") -> httpx.Client:
        """A client connecting from ``source`` (a loopback address) through nginx over TLS."""
        return httpx.Client(
            base_url=f"https://127.0.0.1:{self.https}",
            transport=httpx.HTTPTransport(local_address=source, verify=self.tls),
            timeout=10,
        )

    def direct(self, index: int, source: str = "127.0.0.1") -> httpx.Client:
        """A client talking to one replica without nginx."""
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.replicas[index]}",
            transport=httpx.HTTPTransport(local_address=source),
            timeout=10,
        )


def run_proxy(tmp: Path, settings: Settings, count: int) -> Iterator[Proxy]:
    work = tmp / "nginx"
    work.mkdir()
    replicas = [free_port() for _ in range(count)]
    http, https = free_port(), free_port()
    conf = nginx_config(work, http, https, replicas)
    checked = subprocess.run(
        [NGINX, "-t", "-p", str(work), "-e", str(work / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    procs = [spawn_replica(settings, p) for p in replicas]  # they start side by side
    nginx = subprocess.Popen(
        [NGINX, "-p", str(work), "-e", str(work / "error.log"), "-c", str(conf)]
    )
    try:
        for proc, port in zip(procs, replicas, strict=True):
            wait_until_up(proc, port)
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{http}/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        tls = ssl.create_default_context(cafile=str(work / "ca.pem"))
        yield Proxy(http, https, replicas, tls, work, procs)
    finally:
        nginx.send_signal(signal.SIGTERM)
        try:
            nginx.wait(timeout=10)
        except subprocess.TimeoutExpired:
            nginx.kill()
            nginx.wait()
        for proc in procs:
            stop(proc)


@dataclass
class Stack:
    rt: Runtime
    proxy: Proxy
    account_id: uuid.UUID


def stack(factory: pytest.TempPathFactory, template: Path | None, count: int) -> Iterator[Stack]:
    """A database of its own (as the ``settings`` fixture makes one), ``count`` replicas and
    nginx, shared by the tests of this module: starting them is the slow part."""
    tmp = factory.mktemp("proxy")
    data = tmp / "data"
    data.mkdir()
    if PG_URL:
        _truncate_pg()
        url = PG_URL
    else:
        assert template is not None
        shutil.copy(template, data / "permanence.db")
        url = f"sqlite:///{data / 'permanence.db'}"
    settings = Settings(
        data_dir=data,
        database_url=url,
        database_migration_url=PG_OWNER_URL if PG_URL else None,
        database_app_role=PG_APP_ROLE,
        master_key=TEST_MASTER_KEY,
    )
    rt = Runtime.from_settings(settings)
    try:
        account = make_account(rt, "plomberie-durand")
        for proxy in run_proxy(tmp, settings, count):
            yield Stack(rt, proxy, account.id)
    finally:
        rt.close()


@pytest.fixture(scope="module")
def one(tmp_path_factory: pytest.TempPathFactory, _schema_template: Path | None) -> Iterator[Stack]:
    """nginx in front of one replica (SQLite is served by one process)."""
    yield from stack(tmp_path_factory, _schema_template, 1)


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory, _schema_template: Path | None) -> Iterator[Stack]:
    """nginx in front of two replicas over one PostgreSQL database."""
    if not PG_URL:
        pytest.skip("replicas need PostgreSQL (SQLite is served by one process)")
    yield from stack(tmp_path_factory, _schema_template, 2)


def client_user(stack: Stack) -> str:
    rt = stack.rt
    email = f"client-{uuid.uuid4().hex[:8]}@plomberie-durand.example"
    with rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        create_user(
            s,
            rt.keyring,
            email=email,
            display_name="Secrétariat",
            role=Role.CLIENT,
            password=PASSWORD,
            account_id=stack.account_id,
        )
    return email


def failed_logins(client: httpx.Client, n: int, **headers: str) -> list[int]:
    """``n`` sign-ins with unknown addresses, each different: only the per-address counter of
    the throttle can add up."""
    return [
        client.post(
            "/api/v1/auth/login",
            json={"email": f"nobody-{uuid.uuid4().hex[:8]}@example.org", "password": "x" * 12},
            headers=headers,
        ).status_code
        for _ in range(n)
    ]


# -- through nginx --------------------------------------------------------------------------


def test_plain_http_is_redirected_to_https(one: Stack) -> None:
    r = httpx.get(f"http://127.0.0.1:{one.proxy.http}/connexion?next=/console", timeout=5)
    assert r.status_code == 301
    assert r.headers["location"] == "https://127.0.0.1/connexion?next=/console"


def test_the_application_sees_https_and_sets_secure_cookies(one: Stack) -> None:
    email = client_user(one)
    with one.proxy.client() as c:
        # A URL the application builds itself (trailing-slash redirect) uses the client's scheme.
        r = c.get("/healthz/")
        assert r.status_code in (307, 308)
        assert r.headers["location"].startswith("https://")
        assert c.get("/healthz").json()["status"] == "ok"
        r = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"]
        assert "permanence_session=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
        assert c.get("/api/v1/me").status_code == 200  # the secure cookie comes back over TLS
        # Pages are never cached on the way.
        assert c.get("/connexion").headers["cache-control"] == "no-store"


def test_the_client_address_from_nginx_is_the_one_throttled(one: Stack) -> None:
    with one.proxy.client("127.0.0.5") as c:
        # A forged X-Forwarded-For is replaced by nginx: all five count for 127.0.0.5.
        codes = failed_logins(c, 5, **{"X-Forwarded-For": "198.51.100.7"})
        assert codes == [401] * 5
        assert failed_logins(c, 1)[0] == 429  # the address is slowed down now
    with one.proxy.client("127.0.0.6") as c:  # another client address is not
        assert failed_logins(c, 1) == [401]


def test_a_forged_forwarded_header_sent_straight_to_a_replica_is_not_trusted(
    one: Stack,
) -> None:
    with one.proxy.direct(0, source="127.0.0.9") as c:
        # Each attempt claims another address; the replica only trusts 127.0.0.1, so they all
        # count for 127.0.0.9 and the sixth is throttled.
        codes = [failed_logins(c, 1, **{"X-Forwarded-For": f"203.0.113.{i}"})[0] for i in range(6)]
        assert codes == [401] * 5 + [429]
        # Nor is a forged scheme believed: the URL the application builds stays http.
        r = c.get("/healthz/", headers={"X-Forwarded-Proto": "https"})
        assert r.headers["location"].startswith("http://")


def test_a_body_over_the_limit_is_stopped_by_nginx(one: Stack) -> None:
    with one.proxy.client() as c:
        r = c.post(
            "/api/v1/auth/login",
            content=b"{" + b" " * (1024 * 1024 + 1) + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 413


def test_the_live_queue_streams_through_nginx(one: Stack) -> None:
    _uid, token, _csrf = signed_in_operator(one.rt)
    with one.proxy.client() as c:
        c.cookies.set("permanence_session", token)
        started = time.monotonic()
        with c.stream("GET", "/console/flux") as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            seen = ""
            for chunk in r.iter_text():
                seen += chunk
                if "event: queue" in seen:
                    break
        # Events arrive as they are written, not when nginx's buffer fills or the stream ends.
        assert "retry: 2000" in seen and "event: queue" in seen
        assert time.monotonic() - started < 5


# -- several replicas over one PostgreSQL -----------------------------------------------------


@pytest.mark.postgres
def test_a_session_from_one_replica_works_on_the_other(two: Stack) -> None:
    email = client_user(two)
    with two.proxy.client() as c:
        r = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200
        token = c.cookies["permanence_session"]
        # nginx spreads requests over both replicas; every one of them knows the session.
        for _ in range(6):
            assert c.get("/api/v1/me").status_code == 200
    for index in (0, 1):
        with two.proxy.direct(index) as d:
            d.cookies.set("permanence_session", token)
            assert d.get("/api/v1/me").json()["email"] == email
    log = (two.proxy.work / "access.log").read_text()
    for port in two.proxy.replicas:  # both replicas served requests through nginx
        assert f"127.0.0.1:{port}" in log


@pytest.mark.postgres
def test_signing_out_on_one_replica_ends_the_session_on_the_other_within_the_cache_bound(
    two: Stack,
) -> None:
    email = client_user(two)
    with two.proxy.direct(0) as a, two.proxy.direct(1) as b:
        r = a.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        csrf = r.json()["csrf_token"]
        assert b.get("/api/v1/me").status_code == 401  # b has no cookie yet
        b.cookies.set("permanence_session", a.cookies["permanence_session"])
        assert b.get("/api/v1/me").status_code == 200  # b now remembers the session (ADR 0006)
        assert a.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
        signed_out = time.monotonic()
        while True:
            sent = time.monotonic()
            if b.get("/api/v1/me").status_code == 401:
                break
            # A request sent after the bound must have been re-checked (slow answers under
            # load do not matter: what counts is when the replica handled it).
            assert sent - signed_out < RECHECK_SECONDS + 0.5, "still signed in on b"
            time.sleep(0.2)
        assert b.get("/api/v1/me").status_code == 401


@pytest.mark.postgres
def test_a_rolling_restart_fails_no_request(two: Stack) -> None:
    """docs/deployment.md's rolling restart: one replica at a time, the next only once the
    restarted one answers /readyz. Clients read and write through nginx all along: not one
    request fails (issue 25: 3 s apart gave 2 s of 502)."""
    import threading

    email = client_user(two)
    outcomes: list[str] = []
    done = threading.Event()

    def load(source: str) -> None:
        with two.proxy.client(source) as c:
            r = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            assert r.status_code == 200
            while not done.is_set():
                for method, path in (("GET", "/api/v1/me"), ("POST", "/api/v1/auth/login")):
                    body = {"email": email, "password": PASSWORD} if method == "POST" else None
                    try:
                        status = c.request(method, path, json=body).status_code
                        outcomes.append(f"{method} {status}")
                    except httpx.TransportError as exc:
                        outcomes.append(f"{method} {exc.__class__.__name__}")

    workers = [threading.Thread(target=load, args=(f"127.0.0.{n}",)) for n in (11, 12, 13)]
    for w in workers:
        w.start()
    try:
        time.sleep(1)
        for index, port in enumerate(two.proxy.replicas):
            stop(two.proxy.procs[index])  # systemctl restart: SIGTERM, then start again
            two.proxy.procs[index] = spawn_replica(settings_of(two), port)
            wait_until_ready(two.proxy.procs[index], port)
            # nginx took the replica out after its failures (max_fails=3): it takes it back
            # after fail_timeout. Stopping the other one before that leaves no live upstream.
            time.sleep(NGINX_FAIL_TIMEOUT)
        time.sleep(1)
    finally:
        done.set()
        for w in workers:
            w.join(timeout=30)
    failed = [o for o in outcomes if not o.endswith(" 200")]
    assert len(outcomes) > 100
    assert failed == [], f"{len(failed)} of {len(outcomes)} failed: {sorted(set(failed))}"


NGINX_FAIL_TIMEOUT = 10  # deploy/nginx.conf: fail_timeout=10s


def settings_of(stack: Stack) -> Settings:
    return stack.rt.settings


def wait_until_ready(proc: subprocess.Popen[bytes], port: int) -> None:
    """What the documented procedure waits for between two replicas: /readyz answers 200."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the replica exited with status {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the replica did not become ready")
