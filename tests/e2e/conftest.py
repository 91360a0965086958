"""Browser tests: the app served by uvicorn on a free local port, driven by Playwright in
Debian's headless Chromium (``/usr/bin/chromium``; never ``playwright install``)."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SEEDED_PERSONAL_DATA, free_port
from tests.pii_logs import ServerLogs, find_leaks
from tests.web import conftest as web_fixtures
from tests.web.conftest import World

CHROMIUM = os.environ.get("PERMANENCE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
world = web_fixtures.world  # the same accounts and people as the page tests
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# The README's screenshots are refreshed only on request (PERMANENCE_UPDATE_SCREENSHOTS=1),
# so that running the suite leaves the work tree clean; otherwise they go to a scratch folder.
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("PERMANENCE_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "permanence-screenshots"
)


# What the end-to-end tests type into the pages, besides the data every suite seeds.
CALLER_NAME = "Lemoine"
CALLER_PHONE = "06 12 34 56 78"
CALLER_ADDRESS = "5 rue des Lilas, 44000 Nantes"
CALLER_DESCRIPTION = "Le chauffe-eau ne chauffe plus."
SEEDED = (
    *SEEDED_PERSONAL_DATA,
    CALLER_NAME,
    CALLER_PHONE,
    CALLER_ADDRESS,
    CALLER_DESCRIPTION,
    # The World's people (their e-mail addresses are their sign-in names).
    "op@permanence.example",
    "sup@permanence.example",
    "dpo@permanence.example",
    "admin@permanence.example",
    "sec@cabinet.example",
    "bureau@plomberie.example",
    # The operator onboarded in test_onboarding.py.
    "Inès Nouvel",
    "ines.nouvel@permanence.example",
)


@pytest.fixture(scope="package", autouse=True)
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerLogs]:
    """Everything the end-to-end servers log, access logs included (in-process uvicorn records
    and server subprocesses' output): at the end of the end-to-end tests, no seeded name,
    phone, e-mail or message text may appear in it."""
    logs = ServerLogs(tmp_path_factory.mktemp("server-logs"))
    logs.attach()
    try:
        yield logs
    finally:
        logs.detach()
    leaks = find_leaks(logs.lines(), SEEDED)
    assert leaks == [], "personal data reached the servers' logs"
    if logs.servers:
        # The check is only worth something if it saw the servers' access logs.
        assert logs.access_lines(), "no access log was captured from the servers"


@pytest.fixture
def server(world: World, server_logs: ServerLogs) -> Iterator[str]:
    """The app over the test database, served on 127.0.0.1 in a background thread. Its
    records (access log included) go through the root logger, as under ``permanence serve``,
    so both the per-test check and the session's server-log check read them."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        world.app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_level="info",
        log_config=None,
        timeout_graceful_shutdown=1,
        lifespan="off",
    )
    server_logs.in_process_server()
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():  # pragma: no cover - depends on the machine
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Every axe-core violation of the page as it is now, whatever its impact (minor and
    moderate too: issue 17).

    axe is evaluated through the DevTools protocol: ``add_script_tag`` would inject an inline
    script, which our Content-Security-Policy rightly blocks."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }"""
    )
    return list(result)
