"""A subject's cipher: its data key, each value sealed with associated data naming where it
is stored (account, table, column, row, subject), so a sealed value cannot be moved."""

from __future__ import annotations

import json
import uuid
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from permanence.crypto.primitives import open_sealed, seal


class SubjectCipher:
    """Seals and opens one subject's values, each bound to where it is stored."""

    __slots__ = ("_account", "_aead", "_subject", "account_id", "dek", "subject_id")

    def __init__(self, account_id: uuid.UUID, subject_id: uuid.UUID, dek: bytes) -> None:
        self.account_id = account_id
        self.subject_id = subject_id
        self.dek = dek
        self._aead = AESGCM(dek)
        self._account, self._subject = str(account_id), str(subject_id)

    def ad(self, table: str, column: str, row_id: uuid.UUID | str) -> bytes:
        return f"v1|{self._account}|{table}|{column}|{row_id}|{self._subject}".encode()

    def seal(self, table: str, column: str, row_id: uuid.UUID | str, value: bytes) -> bytes:
        return seal(self._aead, value, self.ad(table, column, row_id))

    def open(self, table: str, column: str, row_id: uuid.UUID | str, blob: bytes) -> bytes:
        return open_sealed(self._aead, blob, self.ad(table, column, row_id))

    def seal_text(self, table: str, column: str, row_id: uuid.UUID | str, value: str) -> bytes:
        return self.seal(table, column, row_id, value.encode())

    def open_text(self, table: str, column: str, row_id: uuid.UUID | str, blob: bytes) -> str:
        return self.open(table, column, row_id, blob).decode()

    def seal_json(self, table: str, column: str, row_id: uuid.UUID | str, value: Any) -> bytes:
        data = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return self.seal(table, column, row_id, data.encode())

    def open_json(self, table: str, column: str, row_id: uuid.UUID | str, blob: bytes) -> Any:
        return json.loads(self.open(table, column, row_id, blob))
