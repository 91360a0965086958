"""Known values for the crypto primitives and the identifier normalisation behind blind indexes.

The expected values come from RFC 5869 (HKDF test case 3) or were computed once with ``hmac``
and ``hashlib`` directly, never through ``permanence``: a blind index computed differently
would stop matching every index already stored.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from permanence.crypto import normalize
from permanence.crypto.primitives import (
    FORMAT_V1,
    KEY_LEN,
    NONCE_LEN,
    blind_index,
    hkdf,
    new_key,
    open_sealed,
    seal,
)
from permanence.errors import IntegrityFailure, ValidationFailed

# RFC 5869, appendix A.3: SHA-256, IKM = 22 bytes 0x0b, no salt, no info, L = 42.
RFC5869_A3_OKM = bytes.fromhex(
    "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
)


def test_hkdf_matches_rfc_5869_test_case_3() -> None:
    assert hkdf(b"\x0b" * 22, "", length=42) == RFC5869_A3_OKM
    assert hkdf(b"\x0b" * 22, "") == RFC5869_A3_OKM[:32]  # the default length is a key's
    assert KEY_LEN == 32


def test_hkdf_salt_and_length_are_named_at_the_call() -> None:
    with pytest.raises(TypeError):
        hkdf(b"\x0b" * 22, "", b"\x01" * 32)  # type: ignore[misc]


def test_hkdf_binds_its_info_and_salt() -> None:
    base = hkdf(b"\x0b" * 22, "")
    assert hkdf(b"\x0b" * 22, "blind-index") != base
    assert hkdf(b"\x0b" * 22, "", salt=b"\x01" * 32) != base


@pytest.mark.parametrize(
    ("bits", "expected"),
    # HMAC-SHA256(32 zero bytes, "+33612345678") begins c5 c2 33 d3 (computed with hmac).
    [(16, 50626), (20, 810019), (32, 3317838803), (1, 1)],
)
def test_blind_index_known_values(bits: int, expected: int) -> None:
    assert blind_index(bytes(32), "+33612345678", bits) == expected


def test_blind_index_is_of_the_utf8_text() -> None:
    # HMAC-SHA256(32 zero bytes, "dupont marie") begins 4c ed 35 d3: 12 bits are 0x4ce.
    assert blind_index(bytes(32), "dupont marie", 12) == 0x4CE
    assert blind_index(bytes(32), "hélène", 32) != blind_index(bytes(32), "helene", 32)


def test_sealed_format_is_version_nonce_ciphertext_tag() -> None:
    aead = AESGCM(new_key())
    blob = seal(aead, b"abc", b"ad")
    assert FORMAT_V1 == b"\x01" and NONCE_LEN == 12
    assert blob[:1] == b"\x01"
    assert len(blob) == 1 + 12 + 3 + 16
    nonce, body = blob[1:13], blob[13:]
    assert aead.decrypt(nonce, body, b"ad") == b"abc"  # readable by AES-GCM alone


def test_the_shortest_sealed_value_opens_and_anything_shorter_is_refused() -> None:
    aead = AESGCM(new_key())
    empty = seal(aead, b"", b"ad")
    assert len(empty) == 29
    assert open_sealed(aead, empty, b"ad") == b""
    with pytest.raises(IntegrityFailure, match="unknown format"):
        open_sealed(aead, empty[:28], b"ad")
    for version in (b"\x00", b"\x02"):  # below and above the one known format
        with pytest.raises(IntegrityFailure, match="unknown format"):
            open_sealed(aead, version + empty[1:], b"ad")
    with pytest.raises(IntegrityFailure, match="failed authentication"):
        open_sealed(aead, empty[:-1] + bytes([empty[-1] ^ 1]), b"ad")


def test_phone_default_region_is_france() -> None:
    assert normalize.phone_e164("06 12 34 56 78") == "+33612345678"
    assert normalize.phone_e164("020 7946 0958", "GB") == "+442079460958"


def test_an_impossible_phone_number_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="not a possible number"):
        normalize.phone_e164("+33 6 12", "FR")
    with pytest.raises(ValidationFailed, match="could not be read"):
        normalize.phone_e164("", "FR")


@pytest.mark.parametrize(
    "raw", ["marie.dupont", "@exemple.fr", "marie@", "marie dupont@exemple.fr", "", "  @  "]
)
def test_malformed_email_is_refused(raw: str) -> None:
    with pytest.raises(ValidationFailed, match="e-mail address is not valid"):
        normalize.email(raw)


def test_email_keeps_everything_before_the_last_at() -> None:
    assert normalize.email('"a@b"@Exemple.fr') == '"a@b"@exemple.fr'


def test_an_unencodable_email_domain_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="e-mail domain is not valid"):
        normalize.email("marie@" + "x" * 64 + ".fr")  # a DNS label is at most 63 octets


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Marie Dupont", "dupont marie"),
        ("  DUPONT   Marie  ", "dupont marie"),
        ("Hélène Lefèvre", "helene lefevre"),
        ("O'Brien-Smith", "brien o smith"),
        ("O’Brien", "brien o"),
        ("J.P. Martin, fils", "fils j martin p"),
        ("Straße", "strasse"),
        ("Zoë\tAnaïs", "anais zoe"),
    ],
)
def test_name_known_forms(raw: str, expected: str) -> None:
    assert normalize.name(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "-", "'.,", "\t"])
def test_an_empty_name_is_refused(raw: str) -> None:
    with pytest.raises(ValidationFailed, match="name is empty"):
        normalize.name(raw)
