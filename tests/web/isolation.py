"""One check for tenant isolation in the web tests: another account's object is a 404.

"Is a 404" means more than the status: the answer must be the one an identifier that exists
nowhere gets, byte for byte, so that a caller cannot tell "exists elsewhere" from "does not
exist" (no oracle for guessing identifiers across accounts; ADR on tenancy, OWASP API1).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def send(client: Any, method: str, path: str, body: Any = None) -> Any:
    """``body`` is a JSON body, or ``{"params": {...}}`` for a query string."""
    if isinstance(body, dict) and "params" in body:
        return client.request(method, path, params=body["params"])
    return (
        client.request(method, path, json=body)
        if body is not None
        else client.request(method, path)
    )


def hidden(client: Any, method: str, path: str, body: Any = None) -> str | None:
    """None when ``path`` answers exactly as the same path with its last identifier replaced
    by one that exists nowhere, and that answer is a 404; else what differs (for a message)."""
    ids = _UUID.findall(path)
    if not ids:
        raise ValueError(f"no identifier in {path}")
    ghost_path = _replace_last(path, ids[-1], str(uuid.uuid4()))
    real = send(client, method, path, body)
    ghost = send(client, method, ghost_path, body)
    if real.status_code != 404:
        return f"{method} {path} -> {real.status_code}, not 404"
    if ghost.status_code != 404 or real.content != ghost.content:
        return (
            f"{method} {path} -> 404 {real.content[:120]!r}, but an identifier that exists "
            f"nowhere -> {ghost.status_code} {ghost.content[:120]!r}"
        )
    return None


def assert_hidden(client: Any, method: str, path: str, body: Any = None) -> None:
    problem = hidden(client, method, path, body)
    assert problem is None, problem


def _replace_last(path: str, old: str, new: str) -> str:
    head, _, tail = path.rpartition(old)
    return head + new + tail
