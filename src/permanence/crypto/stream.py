"""Streaming authenticated encryption for files (recordings), chunk by chunk.

Layout: ``PMR1 | salt (16) | chunk size (4, big endian) | chunk…``. Each chunk is AES-256-GCM
under a file key derived from the subject's data key, the salt and the associated data; its
nonce is the chunk counter with a final-chunk flag, so chunks cannot be reordered, dropped or
the file truncated without detection (the STREAM construction of Hoang, Reyhanitabar, Rogaway
and Vizár). Memory stays at one chunk whatever the file size.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from permanence.crypto.primitives import hkdf
from permanence.errors import IntegrityFailure

MAGIC = b"PMR1"
CHUNK = 64 * 1024
_TAG = 16


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _file_key(dek: bytes, salt: bytes, ad: bytes) -> AESGCM:
    return AESGCM(hkdf(dek, "file|" + ad.hex(), salt=salt))


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    buf = bytearray()
    for piece in chunks:
        buf += piece
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    yield bytes(buf)


def encrypt_stream(
    dek: bytes, ad: bytes, source: Iterable[bytes], sink: BinaryIO, chunk: int = CHUNK
) -> int:
    """Encrypt ``source`` into ``sink``; returns the number of plaintext bytes."""
    salt = os.urandom(16)
    aead = _file_key(dek, salt, ad)
    sink.write(MAGIC + salt + chunk.to_bytes(4, "big"))
    total = 0
    counter = 0
    pending: bytes | None = None
    for piece in _rechunk(source, chunk):
        if pending is not None:
            sink.write(aead.encrypt(_nonce(counter, False), pending, ad))
            counter += 1
        pending = piece
        total += len(piece)
    # _rechunk always yields at least once, so there is a last chunk (possibly empty).
    assert pending is not None
    sink.write(aead.encrypt(_nonce(counter, True), pending, ad))
    return total


def decrypt_stream(dek: bytes, ad: bytes, source: BinaryIO) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk; raise IntegrityFailure on any tampering."""
    header = source.read(len(MAGIC) + 20)
    if len(header) != len(MAGIC) + 20 or header[:4] != MAGIC:
        raise IntegrityFailure("encrypted file has an unknown format")
    salt, chunk = header[4:20], int.from_bytes(header[20:24], "big")
    aead = _file_key(dek, salt, ad)
    counter = 0
    current = source.read(chunk + _TAG)
    while True:
        following = source.read(chunk + _TAG)
        last = not following
        try:
            yield aead.decrypt(_nonce(counter, last), current, ad)
        except InvalidTag:
            raise IntegrityFailure("encrypted file failed authentication") from None
        if last:
            return
        counter += 1
        current = following
