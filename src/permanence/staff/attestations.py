"""Training attestations: the signed attendance sheet or certificate of a training session.

A file is checked before anything is written: its type from its first bytes (PDF, PNG or
JPEG; the name and the declared type are not believed) and its size. It is stored like the
other files the product keeps (``crypto.stream``: chunked AES-256-GCM, written all or
nothing by a ``LocalStore``), under ``DATA_DIR/training``. Attestations are the provider's
own staff data, not a caller's: the key is derived from the master key for this purpose
(ADR 0010), bound to the attestation's id. Only the DPO reads them back; each read is
audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.config import Settings
from permanence.context import Role
from permanence.crypto.keyring import Keyring
from permanence.crypto.stream import decrypt_stream, encrypt_stream
from permanence.db import ctx_of
from permanence.errors import (
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    UnsupportedMediaType,
    ValidationFailed,
)
from permanence.filestore import LocalStore, RecordingStore
from permanence.staff.model import TrainingAttestation

# Below the default request body limit (1 MiB) even base64-encoded in the JSON API.
MAX_ATTESTATION_BYTES = 512 * 1024
# (first bytes, media type, file extension)
KINDS = (
    (b"%PDF-", "application/pdf", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
)
# The store's keys are "<owner>/<file>.pmr"; staff files belong to no client account.
PROVIDER = uuid.UUID(int=0)


def store_for(settings: Settings) -> RecordingStore:
    return LocalStore(settings.data_dir / "training")


def sniff(data: bytes) -> str:
    """The media type of an attestation, or a clear refusal."""
    if not data:
        raise ValidationFailed("the attestation file is empty")
    if len(data) > MAX_ATTESTATION_BYTES:
        raise PayloadTooLarge(
            f"the attestation file is larger than {MAX_ATTESTATION_BYTES // 1024} KiB"
        )
    for magic, media, _ext in KINDS:
        if data.startswith(magic):
            return media
    raise UnsupportedMediaType("the attestation must be a PDF, PNG or JPEG file")


def extension(media: str) -> str:
    return next((ext for _m, kind, ext in KINDS if kind == media), "bin")


def _key(keyring: Keyring) -> bytes:
    return keyring.derived_secret("training-attestation")


def _ad(attestation_id: uuid.UUID) -> bytes:
    return f"training-attestation|{attestation_id}".encode()


def _delete_unless_committed(session: Session, store: RecordingStore, key: str) -> None:
    """The file is written before the transaction commits: if it rolls back instead, the
    file goes too (no file without its row)."""
    committed = False

    def on_commit(_s: Session) -> None:
        nonlocal committed
        committed = True

    def on_rollback(_s: Session) -> None:
        if not committed:
            store.delete(key)

    event.listen(session, "after_commit", on_commit, once=True)
    event.listen(session, "after_rollback", on_rollback, once=True)


def save(
    session: Session, keyring: Keyring, store: RecordingStore, data: bytes
) -> TrainingAttestation:
    """Check and store an attestation; the row is added to the session."""
    media = sniff(data)
    row = TrainingAttestation(
        id=uuid.uuid4(),
        content_type=media,
        size_bytes=len(data),
        recorded_by=ctx_of(session).actor_id,
    )
    row.storage_key = f"{PROVIDER}/{row.id}.pmr"
    session.add(row)
    session.flush()
    key, ad = _key(keyring), _ad(row.id)
    _delete_unless_committed(session, store, row.storage_key)
    store.put(row.storage_key, lambda fh: encrypt_stream(key, ad, [data], fh))
    audit.record(
        session,
        "staff.attestation_stored",
        "training_attestation",
        row.id,
        details={"type": media, "bytes": len(data)},
    )
    return row


@dataclass(frozen=True)
class Opened:
    filename: str
    content_type: str
    size_bytes: int
    chunks: Iterator[bytes]


def open_attestation(
    session: Session, keyring: Keyring, store: RecordingStore, attestation_id: uuid.UUID
) -> Opened:
    """Authorise and audit a read by the DPO; the decrypted file is streamed."""
    if ctx_of(session).role is not Role.DPO:
        raise PermissionDenied("training attestations are read by the DPO")
    row = session.get(TrainingAttestation, attestation_id)
    if row is None:
        raise NotFound("no such attestation")
    audit.record(session, "staff.attestation_read", "training_attestation", row.id)
    key, ad, storage_key = _key(keyring), _ad(row.id), row.storage_key

    def chunks() -> Iterator[bytes]:
        with store.open(storage_key) as fh:
            yield from decrypt_stream(key, ad, fh)

    return Opened(
        f"attestation-{row.id.hex[:8]}.{extension(row.content_type)}",
        row.content_type,
        row.size_bytes,
        chunks(),
    )
