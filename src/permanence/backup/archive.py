"""The backup archive: named entries in one authenticated, encrypted stream.

On disk: ``PMBK1\\n`` and the key id (16 hex digits, a one-way function of the backup key)
with a newline, in clear so that a wrong key is named as such; then the STREAM construction of
``crypto.stream`` (AES-256-GCM chunks, counter nonces, final-chunk flag) under the backup key,
with that header as associated data. Inside, entries follow one another:
``E | name length (2) | name | blocks``, each block ``length (4) | bytes``, a zero length ending
the entry; ``Z`` ends the archive. The last entry is ``manifest.json`` (sizes and SHA-256 of every
other entry, counts, schema revision): nothing in the manifest or in the entry names is personal.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from permanence.config import Settings
from permanence.crypto import masterkey
from permanence.crypto.masterkey import decode_key
from permanence.crypto.primitives import hkdf
from permanence.crypto.stream import decrypt_stream, encrypt_stream
from permanence.errors import ConfigurationError, Conflict, IntegrityFailure, ValidationFailed

MAGIC = b"PMBK1\n"
HEADER_LEN = len(MAGIC) + 17
BLOCK = 256 * 1024
MANIFEST = "manifest.json"


def load_backup_key(settings: Settings) -> bytes:
    if settings.backup_key:
        return decode_key(settings.backup_key, "PERMANENCE_BACKUP_KEY", "backup key")
    path = settings.backup_key_file
    if path is None:
        raise ConfigurationError(
            "no backup key: set PERMANENCE_BACKUP_KEY_FILE (or PERMANENCE_BACKUP_KEY); "
            "'permanence keys backup-key FILE' makes one"
        )
    try:
        text = path.read_text()
    except OSError:
        raise ConfigurationError(f"cannot read the backup key file {path}") from None
    return decode_key(text.strip(), str(path), "backup key")


def create_key_file(path: Path) -> str:
    """Write a new backup key (mode 0600); refuse to overwrite a file. Returns its key id."""
    return key_id(masterkey.create_key_file(path, "a key"))


def key_id(key: bytes) -> str:
    """Names the key without revealing it (HKDF output; 64 bits)."""
    return hkdf(key, "permanence-backup-key-id", length=8).hex()


def header(key: bytes) -> bytes:
    return MAGIC + key_id(key).encode() + b"\n"


# -- writing ----------------------------------------------------------------------------------


class Writer:
    """Builds the plaintext container as an iterator of byte strings, keeping each entry's
    size and SHA-256 for the manifest."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, int | str]] = {}

    def entry(self, name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        raw = name.encode()
        if name in self.entries or not raw or len(raw) > 1000 or name == MANIFEST:
            raise ValueError("entry names are unique, short and not the manifest's")
        yield b"E" + len(raw).to_bytes(2, "big") + raw
        digest = hashlib.sha256()
        size = 0
        for chunk in chunks:
            for i in range(0, len(chunk), BLOCK):
                piece = chunk[i : i + BLOCK]
                digest.update(piece)
                size += len(piece)
                yield len(piece).to_bytes(4, "big") + piece
        yield b"\0\0\0\0"
        self.entries[name] = {"size": size, "sha256": digest.hexdigest()}

    def finish(self, manifest: bytes) -> Iterator[bytes]:
        raw = MANIFEST.encode()
        yield b"E" + len(raw).to_bytes(2, "big") + raw
        for i in range(0, len(manifest), BLOCK):
            piece = manifest[i : i + BLOCK]
            yield len(piece).to_bytes(4, "big") + piece
        yield b"\0\0\0\0Z"


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(BLOCK):
            yield chunk


def write(out: Path, key: bytes, container: Iterable[bytes]) -> int:
    """Encrypt ``container`` into ``out`` (mode 0600, all or nothing); returns the archive's
    size. Refuses to overwrite an existing file."""
    if out.exists():
        raise Conflict(f"{out} already exists: refusing to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            head = header(key)
            fh.write(head)
            encrypt_stream(key, head, container, fh, chunk=BLOCK)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, out)  # fails if ``out`` appeared meanwhile: never overwrite
    finally:
        tmp.unlink(missing_ok=True)
    return out.stat().st_size


# -- reading ----------------------------------------------------------------------------------


class _Buffered:
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()

    def read(self, n: int) -> bytes:
        while len(self._buf) < n:
            nxt = next(self._chunks, None)
            if nxt is None:
                raise ValidationFailed("the archive's content is malformed (it ends too early)")
            self._buf += nxt
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def at_end(self) -> bool:
        while not self._buf:
            nxt = next(self._chunks, None)
            if nxt is None:
                return True
            self._buf += nxt
        return False


def open_archive(source: BinaryIO, key: bytes) -> Iterator[tuple[str, Iterator[bytes]]]:
    """Yield (name, blocks) for each entry; the caller must consume each entry's blocks
    before the next. Raises IntegrityFailure when the key is not the archive's or when the
    archive was altered or truncated: in that case stop and discard what was read."""
    head = source.read(HEADER_LEN)
    if len(head) != HEADER_LEN or not head.startswith(MAGIC):
        raise ValidationFailed("not a Permanence backup archive")
    found = head[len(MAGIC) : -1].decode("ascii", "replace")
    if found != key_id(key):
        raise IntegrityFailure(
            f"wrong backup key: the archive was made with key id {found}, "
            f"the key given has id {key_id(key)}"
        )
    plain = _Buffered(_authenticated(decrypt_stream(key, head, source)))
    while True:
        tag = plain.read(1)
        if tag == b"Z":
            if not plain.at_end():
                raise ValidationFailed("the archive's content is malformed (data after the end)")
            return
        if tag != b"E":
            raise ValidationFailed("the archive's content is malformed (unknown record)")
        name = plain.read(int.from_bytes(plain.read(2), "big")).decode("utf-8", "replace")

        def blocks() -> Iterator[bytes]:
            while n := int.from_bytes(plain.read(4), "big"):
                yield plain.read(n)

        yield name, blocks()


def _authenticated(chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    except IntegrityFailure:
        raise IntegrityFailure(
            "the archive failed authentication: it was altered or truncated after it was made"
        ) from None
