"""The OpenDSR processor certificate and the signatures made with its key (ADR 0028).

OpenDSR 1.0 (sections 4, 6.3, 7.3, 8.3, 8.6) asks the processor to publish an X.509
certificate (``processor_certificate`` in ``/discovery``) whose key signs every response and
every status callback: ``X-OpenDSR-Signature`` is the base64 signature of the SHA-256 digest of
the exact body bytes, made under FIPS 186-4 (ECDSA or RSA).

- Configured: ``PERMANENCE_OPENDSR_CERTIFICATE_FILE`` and ``PERMANENCE_OPENDSR_KEY_FILE``, a
  certificate issued to the deployment's domain by a trusted authority (what the specification
  asks for production) and its EC P-256 or RSA key.
- Default: an EC P-256 key derived from the master key (purpose ``opendsr-certificate``) and
  a self-signed certificate for the domain of ``PERMANENCE_PUBLIC_BASE_URL``, built
  deterministically (fixed validity and serial, RFC 6979 signature) so every process and
  every restart publishes the same bytes without storing anything.

Signatures: ECDSA with SHA-256 (DER, base64) for an EC key; RSASSA-PKCS1-v1_5 with SHA-256
for an RSA key. The certificate says which, so a controller verifies with the certificate's
public key alone.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from permanence.config import Settings
from permanence.crypto.keyring import Keyring
from permanence.errors import ConfigurationError

if TYPE_CHECKING:
    from cryptography import x509

KEY_PURPOSE = "opendsr-certificate"
# The default certificate's validity: fixed, so that it is the same certificate everywhere.
NOT_BEFORE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2045, 1, 1, tzinfo=dt.UTC)

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Processor:
    """The certificate the OpenDSR API publishes and the key that signs for it."""

    certificate: x509.Certificate
    key: SigningKey
    self_signed: bool

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def algorithm(self) -> str:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return "ECDSA-P256-SHA256"
        return "RSASSA-PKCS1-v1_5-SHA256"

    def sign(self, body: bytes) -> str:
        """Base64 signature of the SHA-256 digest of ``body`` (the exact bytes sent)."""
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            raw = self.key.sign(body, ec.ECDSA(hashes.SHA256()))
        else:
            raw = self.key.sign(body, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(raw).decode()


def domain(base_url: str) -> str:
    return urlsplit(base_url).hostname or "localhost"


def processor(settings: Settings, keyring: Keyring) -> Processor:
    """The configured certificate and key, or the default self-signed pair (cached)."""
    if settings.opendsr_certificate_file or settings.opendsr_key_file:
        if not (settings.opendsr_certificate_file and settings.opendsr_key_file):
            raise ConfigurationError(
                "set both PERMANENCE_OPENDSR_CERTIFICATE_FILE and PERMANENCE_OPENDSR_KEY_FILE"
            )
        cert, key = settings.opendsr_certificate_file, settings.opendsr_key_file
        try:
            stamps = (cert.stat().st_mtime_ns, key.stat().st_mtime_ns)
        except OSError:
            raise ConfigurationError("the OpenDSR certificate or key file is missing") from None
        return _configured(cert, key, stamps)
    return _derived(keyring.derived_secret(KEY_PURPOSE), domain(settings.public_base_url))


@lru_cache(maxsize=8)
def _derived(secret: bytes, host: str) -> Processor:
    # x509 is imported when the certificate is first made or read: not at the service's start.
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    curve = ec.SECP256R1()
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    scalar = int.from_bytes(hashlib.sha512(secret).digest(), "big") % (order - 1) + 1
    key = ec.derive_private_key(scalar, curve)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, host),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Permanence OpenDSR processor"),
        ]
    )
    public = key.public_key()
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    serial = int.from_bytes(hashlib.sha256(spki).digest()[:16], "big") >> 1 or 1
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    )
    return Processor(cert, key, self_signed=True)


@lru_cache(maxsize=4)
def _configured(cert_file: Path, key_file: Path, stamps: tuple[int, int]) -> Processor:
    """Read once per version of the files (``stamps``: their modification times)."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"the OpenDSR certificate or key cannot be read ({type(exc).__name__})"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ConfigurationError("the OpenDSR key must be an EC (P-256) or RSA key")
    mine = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    theirs = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if mine != theirs:
        raise ConfigurationError("the OpenDSR key does not match the certificate")
    return Processor(cert, key, self_signed=cert.issuer == cert.subject)
