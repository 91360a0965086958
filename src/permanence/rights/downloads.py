"""The package's expiring, single-use link: its token (only the hash is kept), the encrypted
file in the store, claiming it once, and purging what expired."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.crypto.cipher import SubjectCipher
from permanence.crypto.keyring import Keyring
from permanence.crypto.stream import encrypt_stream
from permanence.db import utcnow
from permanence.filestore import RecordingStore
from permanence.rights.base import DOWNLOAD_TTL, Outbox
from permanence.rights.model import Download, RightsRequest
from permanence.subjects.model import Caller


def _random_token(caller: Caller) -> str:
    return f"{caller.account_id}.{secrets.token_urlsafe(32)}"


def controller_token(keyring: Keyring, account_id: uuid.UUID, request_id: uuid.UUID) -> str:
    """The client's link to a request's results, derived from the master key and the request.

    Derived, not stored: status polling (OpenDSR ``results_url``) gives it again while it is
    unused, and the row is found by its hash, the primary key (no scan). Only the hash is in
    the database, as for every link; the master key is needed to compute it."""
    mac = hmac.new(
        keyring.derived_secret("rights-controller-link"), request_id.bytes, hashlib.sha256
    ).digest()
    return f"{account_id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def controller_link(
    session: Session, keyring: Keyring, req: RightsRequest, now: dt.datetime
) -> Download | None:
    """The client's download row for the request while it can still be used, else None."""
    row = session.get(Download, token_hash(controller_token(keyring, req.account_id, req.id)))
    if row is None or row.request_id != req.id or row.used_at is not None or now >= row.expires_at:
        return None
    return row


def _store(
    session: Session,
    outbox: Outbox,
    cipher: SubjectCipher,
    req: RightsRequest,
    caller: Caller,
    purpose: str,
    payload: bytes,
    now: dt.datetime,
    token: str,
) -> tuple[Download, str]:
    stem = "portabilite" if purpose == "portability" else "acces"
    download = Download(
        id=uuid.uuid4(),
        account_id=caller.account_id,
        request_id=req.id,
        subject_id=caller.id,
        purpose=purpose,
        filename=f"{stem}-{req.id.hex[:8]}.zip",
        created_at=now,
        expires_at=now + _ttl(),
    )
    download.storage_key = f"{caller.account_id}/{download.id}.pmr"
    ad = file_ad(download)
    dek = cipher.dek
    download.size_bytes = outbox.files.put(
        download.storage_key, lambda fh: encrypt_stream(dek, ad, [payload], fh)
    )
    download.token_hash = token_hash(token)
    session.add(download)
    return download, token


def _ttl() -> dt.timedelta:
    return DOWNLOAD_TTL


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def file_ad(download: Download) -> bytes:
    return f"rights-download|{download.account_id}|{download.id}".encode()


@dataclass(frozen=True)
class Claimed:
    filename: str
    storage_key: str
    dek: bytes
    ad: bytes


def account_of_token(token: str) -> uuid.UUID | None:
    """The account a download token belongs to (its prefix), or None for a malformed one."""
    prefix, sep, _rest = token.partition(".")
    if not sep:
        return None
    try:
        return uuid.UUID(prefix)
    except ValueError:
        return None


def claim(
    session: Session, keyring: Keyring, token: str, *, now: dt.datetime | None = None
) -> Claimed:
    """Use a download link: once, before it expires. The file is for the caller to stream and
    then delete (``purge`` removes what expired unused)."""
    from permanence.db import ctx_of
    from permanence.errors import Conflict, NotFound

    now = now or utcnow()
    row = session.get(Download, token_hash(token))
    if row is None or row.account_id != ctx_of(session).account_id:
        raise NotFound("no such download")
    if row.used_at is not None:
        raise Conflict("this link was already used")
    if now >= row.expires_at:
        raise Conflict("this link has expired")
    row.used_at = now
    if row.subject_id is None:
        raise NotFound("no such download")
    cipher = keyring.cipher(session, row.account_id, row.subject_id)
    audit.record(
        session,
        "rights.download",
        "rights_request",
        row.request_id,
        subject_id=row.subject_id,
        details={
            "purpose": row.purpose,
            "recipient": (
                "controller"
                if hmac.compare_digest(
                    token, controller_token(keyring, row.account_id, row.request_id)
                )
                else "requester"
            ),
        },
    )
    return Claimed(row.filename, row.storage_key, cipher.dek, file_ad(row))


def purge(session: Session, store: RecordingStore, now: dt.datetime) -> int:
    """Delete the files of the context's account that were downloaded or have expired."""
    from sqlalchemy import or_, select

    from permanence.db import ctx_of

    account_id = ctx_of(session).require_account()
    rows = session.scalars(
        select(Download).where(
            Download.account_id == account_id,
            or_(Download.used_at.is_not(None), Download.expires_at <= now),
        )
    ).all()
    for row in rows:
        store.delete(row.storage_key)
        session.delete(row)
    return len(rows)
