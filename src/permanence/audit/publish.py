"""Signed checkpoints published outside the database (docs/adr/0013).

The chain proves that no entry was changed *within* the log; only a statement kept elsewhere
proves that the log was not cut short or rewritten whole. ``serve`` signs the head every few
minutes when the log grew and appends it to a JSON-lines file the deployment names
(``PERMANENCE_AUDIT_CHECKPOINT_FILE``); the daily timer does the same, and ``audit verify``
checks the chain against every line of that file.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from permanence.audit import integrity
from permanence.audit.model import AuditCheckpoint, AuditHead
from permanence.context import AccessContext
from permanence.runtime import Runtime

log = logging.getLogger(__name__)


def append(path: Path, checkpoint: dict[str, Any]) -> None:
    """One line per checkpoint, flushed to disk; never rewritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(checkpoint, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read(path: Path) -> list[dict[str, Any]]:
    """Checkpoints from a file: JSON lines, or one JSON object or list (``--out`` exports).

    Raises ValueError naming the line that is not a checkpoint."""
    text = path.read_text(encoding="utf-8")
    stripped = text.strip()
    if not stripped:
        return []
    if stripped.startswith("["):
        data = json.loads(stripped)
        return [dict(d) for d in data]
    try:
        return [dict(json.loads(stripped))]
    except ValueError:
        pass
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise ValueError(f"{path.name} line {n} is not JSON") from None
        if not isinstance(item, dict) or "seq" not in item:
            raise ValueError(f"{path.name} line {n} is not a checkpoint")
        out.append(item)
    return out


def checkpoint_if_grown(rt: Runtime) -> dict[str, Any] | None:
    """Sign and publish the head if it moved since the last checkpoint; the checkpoint."""
    with rt.db.session(AccessContext.system("audit:checkpoint"), readonly=True) as s:
        head = s.get(AuditHead, 1)
        last = s.scalar(select(func.max(AuditCheckpoint.seq)))
    if head is None or head.seq == 0 or (last is not None and last >= head.seq):
        return None
    try:
        with rt.db.session(AccessContext.system("audit:checkpoint")) as s:
            cp = integrity.create_checkpoint(s, rt.keyring)
    except IntegrityError:  # another replica signed the same head at the same moment
        return None
    append(rt.settings.effective_audit_checkpoint_file, cp)
    return cp


class Checkpointer:
    """Runs ``checkpoint_if_grown`` every ``interval`` seconds in a daemon thread."""

    def __init__(self, rt: Runtime, interval: float) -> None:
        self.rt, self.interval = rt, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                cp = checkpoint_if_grown(self.rt)
                if cp is not None:
                    log.info("audit checkpoint at entry %s published", cp["seq"])
            except Exception:  # keep serving; the next round retries
                log.exception("audit checkpoint failed")
