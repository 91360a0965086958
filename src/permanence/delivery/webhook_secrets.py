"""Webhook signing secrets: created or rotated by the client (shown once, kept sealed under a
key derived from the master key), and the secrets that sign for a mandate's ``secret_ref``.
Each takes a session opened by ``Database.session(ctx)``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets as secrets_module
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.audit import service as audit
from permanence.crypto.keyring import Keyring
from permanence.crypto.primitives import open_sealed, seal
from permanence.db import ctx_of, utcnow
from permanence.delivery.model import WebhookSecret
from permanence.errors import ValidationFailed

# Both secrets sign for this long after a rotation.
SECRET_GRACE = dt.timedelta(hours=24)

_SECRET_REF = re.compile(r"(env|file|vault):[A-Za-z0-9_./:-]+")


def _secret_aead(keyring: Keyring) -> AESGCM:
    return AESGCM(keyring.derived_secret("webhook"))


def _secret_ad(account_id: uuid.UUID, name: str, version: int) -> bytes:
    return f"webhook-secret|{account_id}|{name}|{version}".encode()


def set_webhook_secret(session: Session, keyring: Keyring, name: str) -> tuple[str, int]:
    """Create, or rotate, the account's signing secret named ``name`` (the mandate's
    ``secret_ref``); returns the secret, to be shown once, and its version. After a rotation
    the previous secret keeps signing alongside for ``SECRET_GRACE``."""
    account_id = ctx_of(session).require_account()
    if not _SECRET_REF.fullmatch(name):
        raise ValidationFailed(
            "the name must be the mandate's secret_ref, e.g. env:CLIENT_WEBHOOK_SECRET"
        )
    secret = "whsec_" + secrets_module.token_urlsafe(32)
    aead = _secret_aead(keyring)
    row = session.scalars(
        select(WebhookSecret).where(
            WebhookSecret.account_id == account_id, WebhookSecret.name == name
        )
    ).first()
    now = utcnow()
    if row is None:
        row = WebhookSecret(id=uuid.uuid4(), account_id=account_id, name=name, version=1)
        row.secret_sealed = seal(aead, secret.encode(), _secret_ad(account_id, name, 1))
        session.add(row)
        action = "webhook_secret.create"
    else:
        # The previous secret stays sealed under its own version's associated data.
        row.previous_sealed = row.secret_sealed
        row.version += 1
        row.secret_sealed = seal(aead, secret.encode(), _secret_ad(account_id, name, row.version))
        row.rotated_at = now
        action = "webhook_secret.rotate"
    session.flush()
    audit.record(session, action, "webhook_secret", row.id, details={"version": row.version})
    return secret, row.version


def signing_secrets(session: Session, keyring: Keyring, ref: str, now: dt.datetime) -> list[bytes]:
    """The secrets that sign for ``ref``: the stored one (and the previous one during the
    grace period), else the ``env:`` variable or ``file:`` content; empty if none."""
    account_id = ctx_of(session).require_account()
    row = session.scalars(
        select(WebhookSecret).where(
            WebhookSecret.account_id == account_id, WebhookSecret.name == ref
        )
    ).first()
    if row is not None:
        aead = _secret_aead(keyring)
        out = [open_sealed(aead, row.secret_sealed, _secret_ad(account_id, ref, row.version))]
        if row.previous_sealed and row.rotated_at and now < row.rotated_at + SECRET_GRACE:
            ad = _secret_ad(account_id, ref, row.version - 1)
            out.append(open_sealed(aead, row.previous_sealed, ad))
        return out
    kind, _, where = ref.partition(":")
    # A mandate is the client's document: it must not point the signature at our own
    # settings (the master key among them).
    if kind == "env" and not where.upper().startswith("PERMANENCE_") and os.environ.get(where):
        return [os.environ[where].encode()]
    if kind == "file":
        try:
            with open(where, encoding="utf-8") as fh:
                value = fh.read().strip()
        except OSError:
            return []
        return [value.encode()] if value else []
    return []
