"""The OpenDSR protocol (formerly OpenGDPR, v1.0), extended for what it lacks (docs/opendsr.md).

- Paths: ``/opendsr/v1/discovery``, ``/opendsr/v1/opendsr_requests[/{id}]`` (the
  specification's, major version first); the OpenGDPR names (``opengdpr_requests``) and the
  earlier ``/opendsr/discovery``, ``/opendsr/requests[/{id}]`` answer the same.
- Signatures: every response (errors included) and every status callback carries
  ``X-OpenDSR-Signature``, the base64 signature of the SHA-256 digest of the exact body bytes
  by the key of the processor certificate that ``/discovery`` points to
  (``processor_certificate``; ``opendsr_signing``, ADR 0028), and
  ``X-OpenDSR-Processor-Domain``; the OpenGDPR header names carry the same values.
- Status callbacks: POSTed to the ``status_callback_urls`` given at submission (https only)
  on every status change, through the delivery ledger (retried with back-off;
  ``rights.callbacks``).
- Results: a completed access or portability request carries ``results_url`` (the client's
  own single-use link, also given by status polling while it is unused) and ``results_count``.
- Identities: ``email`` raw or ``sha256`` (hex of the normalised address),
  ``controller_customer_id`` (kept; alone it finds nobody, see ``rights.intake``), and our
  extensions ``phone_number`` and ``name``.
- Extensions: request types ``rectification``, ``restriction``, ``objection``; their
  parameters in ``extensions.<processor domain>`` (or ``extensions.permanence``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from permanence.accounts.model import Account
from permanence.rights.model import RightsRequest, State
from permanence.rights.opendsr_signing import Processor

API_VERSION = "1.0"
SIGNATURE_HEADER = "X-OpenDSR-Signature"
DOMAIN_HEADER = "X-OpenDSR-Processor-Domain"
# OpenDSR 10.1: the OpenGDPR names stay honoured.
LEGACY_SIGNATURE_HEADER = "X-OpenGDPR-Signature"
LEGACY_DOMAIN_HEADER = "X-OpenGDPR-Processor-Domain"
STANDARD_TYPES = ("access", "portability", "erasure")
EXTENDED_TYPES = ("rectification", "restriction", "objection")
# (identity_type, identity_format) -> the requester field it fills.
IDENTITIES: dict[tuple[str, str], str] = {
    ("email", "raw"): "email",
    ("email", "sha256"): "email_sha256",
    ("controller_customer_id", "raw"): "customer_id",
    ("phone_number", "raw"): "phone",  # extension
    ("name", "raw"): "name",  # extension
}
REGULATIONS = ("gdpr",)
CERTIFICATE_PATH = "/opendsr/v1/processor_certificate.pem"

_STATUS = {
    State.RECEIVED.value: "pending",
    State.VERIFYING.value: "in_progress",
    State.WAITING_INFO.value: "in_progress",
    State.VERIFIED.value: "in_progress",
    State.COMPLETED.value: "completed",
    State.REFUSED.value: "completed",  # the precise outcome is in extensions.permanence
    State.CANCELLED.value: "cancelled",
}


def body_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def domain(base_url: str) -> str:
    return urlsplit(base_url).hostname or "localhost"


def signature_headers(signer: Processor, base_url: str, body: bytes) -> dict[str, str]:
    """The OpenDSR signature and domain headers for ``body`` (and their OpenGDPR names)."""
    signature, host = signer.sign(body), domain(base_url)
    return {
        SIGNATURE_HEADER: signature,
        DOMAIN_HEADER: host,
        LEGACY_SIGNATURE_HEADER: signature,
        LEGACY_DOMAIN_HEADER: host,
    }


def discovery(signer: Processor, base_url: str) -> dict[str, Any]:
    base = base_url.rstrip("/")
    return {
        "api_version": API_VERSION,
        "supported_identities": [
            {"identity_type": t, "identity_format": f} for (t, f) in IDENTITIES
        ],
        "supported_subject_request_types": [*STANDARD_TYPES, *EXTENDED_TYPES],
        "processor_certificate": f"{base}{CERTIFICATE_PATH}",
        "extensions": {
            "permanence": {
                "documentation": f"{base}/docs/opendsr",
                "signature_algorithm": signer.algorithm,
                "self_signed_certificate": signer.self_signed,
                "request_types": list(EXTENDED_TYPES),
                "identity_types": ["phone_number", "name"],
                "extension_keys": [domain(base_url), "permanence"],
                "parameters": {
                    "objection_scope": "'recording' or a purpose code of the mandate",
                    "changes": "rectification: {identity: {...}, records: [...]}",
                    "statement": "rectification: the subject's supplementary statement",
                },
            }
        },
    }


def status_of(state: str) -> str:
    return _STATUS[state]


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
