"""What a running process holds: settings, the database and the keyring."""

from __future__ import annotations

from dataclasses import dataclass

from permanence.backup.journal import MAC_PURPOSE, ErasureMirror
from permanence.config import Settings, get_settings
from permanence.crypto.keyring import Keyring, load_master_key
from permanence.db import Database


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keyring: Keyring

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Runtime:
        settings = settings or get_settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(
            settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        keyring = Keyring(
            load_master_key(settings),
            index_bits=settings.blind_index_bits,
            region=settings.default_region,
        )
        db.erasure_mirror = ErasureMirror(
            settings.effective_erasure_journal_file, keyring.derived_secret(MAC_PURPOSE)
        )
        return cls(settings=settings, db=db, keyring=keyring)

    def close(self) -> None:
        self.db.dispose()
