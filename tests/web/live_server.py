"""The app behind a real uvicorn socket on 127.0.0.1, in a background thread, for tests that
need what only a real server does (proxy headers, chunked bodies, streamed responses)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.conftest import free_port


@contextmanager
def serving(app: Any, **config: Any) -> Iterator[int]:
    """Serve ``app``; yields the port. ``config`` goes to ``uvicorn.Config``."""
    import uvicorn

    port = free_port()
    options: dict[str, Any] = {"log_level": "warning", "lifespan": "off", **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
