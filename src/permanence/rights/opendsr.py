"""The OpenDSR protocol (formerly OpenGDPR, v1.0), extended for what it lacks (docs/rights.md).

- Receipts: every response body is signed, Ed25519 over the SHA-256 of the exact body bytes,
  base64 in ``X-OpenDSR-Signature``; the public key is published by ``GET /opendsr/discovery``.
  The key is derived from the master key (purpose ``opendsr-receipt``).
- Status callbacks: POSTed to the ``status_callback_urls`` given at submission (https only),
  signed the same way. Tried once each (the specification's MUST); failures are audited.
- Results: a completed access or portability request carries ``results_url`` (the client's
  own single-use link, also given by status polling while it is unused) and ``results_count``.
- Extensions: request types ``rectification``, ``restriction``, ``objection``; identity types
  ``phone_number`` and ``name``; their parameters in ``extensions.permanence``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from permanence.accounts.model import Account
from permanence.audit import service as audit
from permanence.context import AccessContext
from permanence.crypto.keyring import Keyring
from permanence.delivery.ports import SendFailed, WebhookRequest, WebhookSender
from permanence.rights.model import RightsRequest, State

log = logging.getLogger("permanence.rights")

API_VERSION = "1.0"
SIGNATURE_HEADER = "X-OpenDSR-Signature"
DOMAIN_HEADER = "X-OpenDSR-Processor-Domain"
SIGNATURE_ALGORITHM = "Ed25519(SHA-256(body))"
STANDARD_TYPES = ("access", "portability", "erasure")
EXTENDED_TYPES = ("rectification", "restriction", "objection")
# identity_type -> our identifier. "email" is OpenDSR's; the others are our extension.
IDENTITY_TYPES = {"email": "email", "phone_number": "phone", "name": "name"}

_STATUS = {
    State.RECEIVED.value: "pending",
    State.VERIFYING.value: "in_progress",
    State.WAITING_INFO.value: "in_progress",
    State.VERIFIED.value: "in_progress",
    State.COMPLETED.value: "completed",
    State.REFUSED.value: "completed",  # the precise outcome is in extensions.permanence
    State.CANCELLED.value: "cancelled",
}


def signing_key(keyring: Keyring) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(keyring.derived_secret("opendsr-receipt"))


def public_key_b64(keyring: Keyring) -> str:
    raw = signing_key(keyring).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def sign(keyring: Keyring, body: bytes) -> str:
    return base64.b64encode(signing_key(keyring).sign(hashlib.sha256(body).digest())).decode()


def body_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def domain(base_url: str) -> str:
    return urlsplit(base_url).hostname or "localhost"


def discovery(keyring: Keyring, base_url: str) -> dict[str, Any]:
    return {
        "api_version": API_VERSION,
        "supported_identities": [
            {"identity_type": t, "identity_format": "raw"} for t in IDENTITY_TYPES
        ],
        "supported_subject_request_types": [*STANDARD_TYPES, *EXTENDED_TYPES],
        "processor_certificate": None,
        "processor_public_key": public_key_b64(keyring),
        "signature_algorithm": SIGNATURE_ALGORITHM,
        "signature_header": SIGNATURE_HEADER,
        "extensions": {
            "permanence": {
                "documentation": f"{base_url}/docs/rights",
                "request_types": list(EXTENDED_TYPES),
                "identity_types": ["phone_number", "name"],
                "parameters": {
                    "objection_scope": "'recording' or a purpose code of the mandate",
                    "changes": "rectification: {identity: {...}, records: [...]}",
                    "statement": "rectification: the subject's supplementary statement",
                },
            }
        },
    }


def status(req: RightsRequest) -> str:
    return _STATUS[req.state]


def status_document(
    req: RightsRequest, account: Account, results_url: str | None = None
) -> dict[str, Any]:
    ext: dict[str, Any] = {"state": req.state, "due_at": req.due_at.isoformat()}
    if req.extended_at is not None:
        ext["extension_reason"] = req.extension_reason
    if req.refusal_reason is not None:
        ext["refusal_reason"] = req.refusal_reason
    if req.waiting_reason is not None:
        ext["waiting_reason"] = req.waiting_reason
    if req.certificate is not None:
        ext["erasure_certificate"] = json.loads(req.certificate)
    return {
        "controller_id": account.slug,
        "expected_completion_time": req.due_at.isoformat(),
        "subject_request_id": req.external_id,
        "request_status": status(req),
        "api_version": API_VERSION,
        "results_url": results_url,
        "results_count": 1 if results_url else 0,
        "extensions": {"permanence": ext},
    }


def send_callbacks(
    rt: Any,
    sender: WebhookSender,
    account_id: uuid.UUID,
    request_id: uuid.UUID,
    *,
    results_url: str | None = None,
) -> dict[str, str]:
    """POST the request's status to each callback URL; returns url -> outcome code."""
    ctx = AccessContext.system("rights:opendsr_callback", account_id)
    with rt.db.session(ctx, readonly=True) as s:
        req = s.get(RightsRequest, request_id)
        account = s.get(Account, account_id)
        if req is None or account is None or req.account_id != account_id:
            return {}
        urls: list[str] = json.loads(req.callback_urls or "[]")
        doc = status_document(req, account, results_url)
    outcomes: dict[str, str] = {}
    base = rt.settings.public_base_url
    for url in urls:
        body = body_bytes({**doc, "status_callback_url": url})
        headers = {
            "Content-Type": "application/json",
            DOMAIN_HEADER: domain(base),
            SIGNATURE_HEADER: sign(rt.keyring, body),
        }
        try:
            sender.post(WebhookRequest(url, body, headers))
            outcomes[url] = "sent"
        except SendFailed as exc:
            outcomes[url] = exc.code
            log.warning("OpenDSR status callback failed: %s", exc.code)
    if outcomes:
        with rt.db.session(ctx) as s:
            audit.record(
                s,
                "rights.opendsr_callback",
                "rights_request",
                request_id,
                details={
                    "sent": sum(1 for v in outcomes.values() if v == "sent"),
                    "failed": sum(1 for v in outcomes.values() if v != "sent"),
                    "status": doc["request_status"],
                },
            )
    return outcomes
