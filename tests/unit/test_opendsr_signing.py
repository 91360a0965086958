"""The OpenDSR processor certificate (ADR 0028): the default one is the same bytes for the
same master key (every process, every restart), another master key gives another; a
configured certificate signs with its own key, RSA included; a key that does not match its
certificate, or half a configuration, is refused."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from permanence.config import Settings
from permanence.crypto.keyring import Keyring
from permanence.errors import ConfigurationError
from permanence.rights.opendsr_signing import processor


def _settings(tmp_path: Path, **more: object) -> Settings:
    return Settings(data_dir=tmp_path, public_base_url="https://permanence.example.fr", **more)  # type: ignore[arg-type]


def test_the_default_certificate_is_derived_and_stable(tmp_path: Path) -> None:
    one = processor(_settings(tmp_path), Keyring(b"\x01" * 32))
    again = processor(_settings(tmp_path), Keyring(b"\x01" * 32))
    other = processor(_settings(tmp_path), Keyring(b"\x02" * 32))
    assert one.pem == again.pem and one.pem != other.pem
    cert = x509.load_pem_x509_certificate(one.pem)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "permanence.example.fr" and one.self_signed
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["permanence.example.fr"]
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    body = b'{"request_status":"completed"}'
    public.verify(base64.b64decode(one.sign(body)), body, ec.ECDSA(hashes.SHA256()))
    # Self-signed: the certificate's own key signed it.
    cert.verify_directly_issued_by(cert)


def _rsa_pair(tmp_path: Path, name: str) -> tuple[Path, Path, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "permanence.example.fr")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, key


def test_a_configured_rsa_certificate_signs_with_its_key(tmp_path: Path) -> None:
    cert_file, key_file, key = _rsa_pair(tmp_path, "a")
    settings = _settings(tmp_path, opendsr_certificate_file=cert_file, opendsr_key_file=key_file)
    p = processor(settings, Keyring(b"\x01" * 32))
    assert p.pem == cert_file.read_bytes()
    body = b"{}"
    key.public_key().verify(
        base64.b64decode(p.sign(body)), body, padding.PKCS1v15(), hashes.SHA256()
    )


def test_a_key_of_another_certificate_or_half_a_configuration_is_refused(
    tmp_path: Path,
) -> None:
    cert_a, _key_a, _ = _rsa_pair(tmp_path, "a")
    _cert_b, key_b, _ = _rsa_pair(tmp_path, "b")
    keyring = Keyring(b"\x01" * 32)
    with pytest.raises(ConfigurationError, match="does not match"):
        processor(
            _settings(tmp_path, opendsr_certificate_file=cert_a, opendsr_key_file=key_b),
            keyring,
        )
    with pytest.raises(ConfigurationError, match="both"):
        processor(_settings(tmp_path, opendsr_certificate_file=cert_a), keyring)
