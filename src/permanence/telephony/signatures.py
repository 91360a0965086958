"""Webhook signatures: Twilio's ``X-Twilio-Signature`` (also SignalWire's) and Telnyx's
Ed25519 signature. Our own code, tested against the ``twilio`` package as an independent peer.

The URL that was signed is rebuilt from the configured public base URL, never from the
request's Host header (a proxy, or an attacker, controls that).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# Telnyx signs with a timestamp; older than this, a captured request is a replay.
TELNYX_TOLERANCE_S = 300


def twilio_signature(url: str, params: Iterable[tuple[str, str]], auth_token: str) -> str:
    """base64(HMAC-SHA1(token, url + name1 + value1 + name2 + value2 ...)), names sorted.

    A repeated name contributes each of its values, sorted, as Twilio does.
    """
    data = url + "".join(k + v for k, v in sorted(params))
    mac = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def twilio_valid(
    url: str, params: Iterable[tuple[str, str]], signature: str | None, auth_token: str | None
) -> bool:
    """Whether ``signature`` signs this request; False without a token or a signature."""
    if not auth_token or not signature:
        return False
    expected = twilio_signature(url, list(params), auth_token)
    return hmac.compare_digest(expected.encode(), signature.encode())


def telnyx_valid(
    body: bytes,
    signature_b64: str | None,
    timestamp: str | None,
    public_key_b64: str | None,
    *,  # pragma: no mutate (keyword-only marker: how callers spell it, not what it checks)
    now: float | None = None,
) -> bool:
    """Ed25519 over ``timestamp|body`` (headers ``telnyx-signature-ed25519``,
    ``telnyx-timestamp``); a timestamp more than 5 minutes away is refused (replay)."""
    if not (public_key_b64 and signature_b64 and timestamp):
        return False
    try:
        stamp = int(timestamp)
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, binascii.Error):
        return False
    if abs((time.time() if now is None else now) - stamp) > TELNYX_TOLERANCE_S:
        return False
    try:
        key.verify(signature, timestamp.encode() + b"|" + body)
    except InvalidSignature:
        return False
    return True
