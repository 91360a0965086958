"""The erasure-epoch rotation run by 'serve' (ADR 0029): debounced after erasures, and on a
schedule. One thread; every ``tick`` seconds it asks the keyring whether a rotation is due."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from permanence.crypto.keyring import Keyring
from permanence.db import Database

log = logging.getLogger("permanence.keys")

TICK = 60.0


class EpochRotator:
    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        *,
        delay: float,
        max_age: float,
        on_rotated: Callable[[str, dict[str, int]], None] | None = None,
        tick: float = TICK,
    ) -> None:
        self.db, self.keyring = db, keyring
        self.delay, self.max_age, self.tick = delay, max_age, tick
        self.on_rotated = on_rotated
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="epoch-rotation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def run_once(self) -> dict[str, int] | None:
        """Rotate if due (and no other process is rotating); the counts, or None."""
        reason = self.keyring.epoch_rotation_due(self.db, self.delay, self.max_age)
        if reason is None or self.keyring.epochs is None:
            return None
        with self.keyring.epochs.rotation_lock(wait=False) as mine:
            if not mine:
                return None
        done = self.keyring.rotate_epoch(self.db)
        log.info(
            "erasure epoch %s (%s): %s keys re-wrapped, %s old epoch key(s) destroyed",
            done["epoch"],
            reason,
            done["rewrapped"],
            done["destroyed"],
        )
        if self.on_rotated is not None:
            self.on_rotated(reason, done)
        return done

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.run_once()
            except Exception:  # keep serving; the next tick retries
                log.exception("erasure epoch rotation failed")
