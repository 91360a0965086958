"""What a running process holds: settings, the database and the keyring."""

from __future__ import annotations

from dataclasses import dataclass

from permanence.backup.journal import ErasureMirror
from permanence.config import Settings, get_settings
from permanence.crypto.keyring import Keyring
from permanence.db import Database


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keyring: Keyring

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Runtime:
        from permanence.fsmodes import private_dir

        settings = settings or get_settings()
        private_dir(settings.data_dir)
        db = Database(
            settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        keyring = Keyring.from_settings(settings)
        db.erasure_mirror = ErasureMirror.from_settings(settings, keyring)
        return cls(settings=settings, db=db, keyring=keyring)

    def close(self) -> None:
        self.db.dispose()
