"""Certificates signed with the audit checkpoint key (Ed25519): the off-boarding's certificate
of deletion (``contracts.offboarding``) and the erasure certificate (``rights.erasure``). Here,
below both, beside the key and the canonical form they use (ADR 0038)."""

from __future__ import annotations

import base64
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from permanence.audit import integrity
from permanence.audit import service as audit
from permanence.crypto.keyring import Keyring


def sign_document(keyring: Keyring, document: dict[str, Any]) -> tuple[str, str]:
    """Sign a certificate (off-boarding, erasure): (signature, public key), base64."""
    key = keyring.checkpoint_signing_key()
    sig = key.sign(audit.canonical(document).encode())
    return base64.b64encode(sig).decode(), integrity.public_key_b64(key.public_key())


def verify_certificate(document: dict[str, Any], signature: str, public_key: str) -> bool:
    try:
        pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        pub.verify(base64.b64decode(signature), audit.canonical(document).encode())
    except (InvalidSignature, ValueError):
        return False
    return True
