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

from tests.conftest import free_port
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


@pytest.fixture
def server(world: World) -> Iterator[str]:
    """The app over the test database, served on 127.0.0.1 in a background thread."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        world.app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
        lifespan="off",
    )
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
    """Serious and critical axe-core violations of the page as it is now.

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
    return [v for v in result if v["impact"] in ("serious", "critical")]
