"""AES-256-GCM sealing with associated data, HKDF derivation, and the blind-index HMAC.

Sealed format: ``0x01 | nonce (12) | ciphertext | tag (16)``. The associated data is never
stored: the caller rebuilds it from where the value lives (account, table, column, row, key),
so a ciphertext copied to another row or column fails to open.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from permanence.errors import IntegrityFailure

FORMAT_V1 = b"\x01"
NONCE_LEN = 12
KEY_LEN = 32


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(aead: AESGCM, plaintext: bytes, ad: bytes) -> bytes:
    nonce = os.urandom(NONCE_LEN)
    return FORMAT_V1 + nonce + aead.encrypt(nonce, plaintext, ad)


def open_sealed(aead: AESGCM, blob: bytes, ad: bytes) -> bytes:
    if len(blob) < 1 + NONCE_LEN + 16 or blob[:1] != FORMAT_V1:
        raise IntegrityFailure("sealed value has an unknown format")
    try:
        return aead.decrypt(blob[1 : 1 + NONCE_LEN], blob[1 + NONCE_LEN :], ad)
    except InvalidTag:
        raise IntegrityFailure(
            "sealed value failed authentication (tampered, or moved from elsewhere)"
        ) from None


def hkdf(key: bytes, info: str, *, salt: bytes | None = None, length: int = KEY_LEN) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info.encode()).derive(key)


def blind_index(key: bytes, normalised: str, bits: int) -> int:
    """HMAC-SHA256 truncated to ``bits``: deliberately collides, so that a match is deniable."""
    digest = hmac.new(key, normalised.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big") >> (32 - bits)
