"""One check for tenant isolation in the web tests: another account's object is a 404.

"Is a 404" means more than the status: the answer must be the one an identifier that exists
nowhere gets — byte for byte once each answer's own path is taken out (pages echo it in their
language link) — so that nobody can tell "exists in another account" from "does not exist"
(no oracle for guessing identifiers across accounts: OWASP API Security Top 10, API1).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def send(client: Any, method: str, path: str, body: Any = None) -> Any:
    """``body``: a JSON body; ``{"params": {...}}`` for a query string; ``{"form": {...}}``
    for a page's form post."""
    if isinstance(body, dict) and "params" in body:
        return client.request(method, path, params=body["params"])
    if isinstance(body, dict) and "form" in body:
        return client.request(method, path, data=body["form"])
    if body is None:
        return client.request(method, path)
    return client.request(method, path, json=body)


def ghost_of(path: str) -> tuple[str, str, str]:
    """``path`` with its last identifier replaced by a new one: (path, old id, new id)."""
    ids = _UUID.findall(path)
    if not ids:
        raise ValueError(f"no identifier in {path}")
    new = str(uuid.uuid4())
    head, _, tail = path.rpartition(ids[-1])
    return head + new + tail, ids[-1], new


def same_answer(real: Any, real_id: str, ghost: Any, ghost_id: str) -> bool:
    """The two answers are the same once each one's own identifier is taken out."""
    return real.status_code == ghost.status_code and real.content.replace(
        real_id.encode(), b"{id}"
    ) == ghost.content.replace(ghost_id.encode(), b"{id}")


def hidden(client: Any, method: str, path: str, body: Any = None) -> str | None:
    """None when ``path`` is a 404 that answers exactly as the same path whose last identifier
    exists nowhere; else what is wrong (for an assertion message)."""
    ghost_path, real_id, ghost_id = ghost_of(path)
    real = send(client, method, path, body)
    ghost = send(client, method, ghost_path, body)
    if real.status_code != 404:
        return f"{method} {path} -> {real.status_code}, not 404"
    if not same_answer(real, real_id, ghost, ghost_id):
        return (
            f"{method} {path} -> 404 {real.content[:160]!r}, but an identifier that exists "
            f"nowhere -> {ghost.status_code} {ghost.content[:160]!r}"
        )
    return None


def refused_blind(client: Any, method: str, path: str, body: Any = None) -> bool:
    """The role is refused (403) before any lookup: the same answer whatever the identifier."""
    ghost_path, real_id, ghost_id = ghost_of(path)
    real = send(client, method, path, body)
    ghost = send(client, method, ghost_path, body)
    return real.status_code == 403 and same_answer(real, real_id, ghost, ghost_id)


def assert_hidden(client: Any, method: str, path: str, body: Any = None) -> None:
    problem = hidden(client, method, path, body)
    assert problem is None, problem
