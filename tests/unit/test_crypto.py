"""Sealing, blind indexes, normalisation and streaming encryption: no database."""

from __future__ import annotations

import io
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from permanence.crypto import normalize
from permanence.crypto.cipher import SubjectCipher
from permanence.crypto.primitives import blind_index, new_key, open_sealed, seal
from permanence.crypto.stream import decrypt_stream, encrypt_stream
from permanence.errors import IntegrityFailure, ValidationFailed

A, S = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-0000000000c1"


@pytest.mark.gdpr("Art. 32")
def test_sealed_value_opens_only_with_its_associated_data() -> None:
    aead = AESGCM(new_key())
    blob = seal(aead, b"Marie Dupont", b"v1|a|callers|name|r1|s1")
    assert b"Marie" not in blob
    assert open_sealed(aead, blob, b"v1|a|callers|name|r1|s1") == b"Marie Dupont"
    with pytest.raises(IntegrityFailure):
        open_sealed(aead, blob, b"v1|a|callers|name|r2|s1")  # moved to another row


def test_ciphertext_swapped_between_columns_fails() -> None:
    import uuid

    c = SubjectCipher(uuid.UUID(A), uuid.UUID(S), new_key())
    row = uuid.uuid4()
    phone = c.seal_text("callers", "phone", row, "+33612345678")
    assert c.open_text("callers", "phone", row, phone) == "+33612345678"
    with pytest.raises(IntegrityFailure):
        c.open_text("callers", "email", row, phone)


def test_tampered_byte_is_detected() -> None:
    aead = AESGCM(new_key())
    blob = bytearray(seal(aead, b"secret", b"ad"))
    blob[-1] ^= 1
    with pytest.raises(IntegrityFailure):
        open_sealed(aead, bytes(blob), b"ad")


def test_same_value_seals_differently_each_time() -> None:
    aead = AESGCM(new_key())
    assert seal(aead, b"x", b"ad") != seal(aead, b"x", b"ad")


def test_blind_index_is_truncated_to_the_configured_bits() -> None:
    key = new_key()
    values = {blind_index(key, f"+3361234{i:04d}", 8) for i in range(2000)}
    assert max(values) < 256
    assert len(values) > 200  # spread over (nearly) the whole range: collisions by design
    assert blind_index(key, "a", 16) == blind_index(key, "a", 16)
    other = new_key()  # another account's key: its indexes do not link to these
    same = sum(blind_index(key, f"v{i}", 16) == blind_index(other, f"v{i}", 16) for i in range(500))
    assert same < 5


@pytest.mark.parametrize(
    "raw",
    ["06 12 34 56 78", "06.12.34.56.78", "+33 6 12 34 56 78", "0033612345678", "+33612345678"],
)
def test_phone_numbers_normalise_to_e164(raw: str) -> None:
    assert normalize.phone_e164(raw, "FR") == "+33612345678"


def test_unreadable_phone_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationFailed) as err:
        normalize.phone_e164("appelez-moi", "FR")
    assert "appelez" not in str(err.value)


def test_email_normalisation_lowercases_and_encodes_the_domain() -> None:
    assert normalize.email("  Marie.Dupont@Exemple.FR ") == "marie.dupont@exemple.fr"
    assert normalize.email("jean@café.fr") == "jean@xn--caf-dma.fr"
    with pytest.raises(ValidationFailed):
        normalize.email("pas une adresse")


def test_name_normalisation_ignores_case_accents_order_and_hyphens() -> None:
    assert normalize.name("Hélène  LEFÈVRE") == normalize.name("lefevre helene")
    assert normalize.name("Jean-Pierre Martin") == normalize.name("MARTIN Jean Pierre")
    assert normalize.name("Marie Dupont") != normalize.name("Marie Durand")


def _encrypt(data: bytes, chunk: int = 1024) -> tuple[bytes, bytes]:
    dek = new_key()
    out = io.BytesIO()
    n = encrypt_stream(
        dek, b"rec|1", [data[i : i + 777] for i in range(0, len(data), 777)], out, chunk
    )
    assert n == len(data)
    return dek, out.getvalue()


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=5000))
def test_stream_round_trip(data: bytes) -> None:
    dek, enc = _encrypt(data)
    assert b"".join(decrypt_stream(dek, b"rec|1", io.BytesIO(enc))) == data


def test_stream_hides_the_audio_and_detects_truncation_and_reordering() -> None:
    data = os.urandom(10_000)
    dek, enc = _encrypt(data)
    assert data[:64] not in enc
    header, body = enc[:24], enc[24:]
    size = 1024 + 16
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    truncated = header + b"".join(chunks[:-1])
    with pytest.raises(IntegrityFailure):
        b"".join(decrypt_stream(dek, b"rec|1", io.BytesIO(truncated)))
    swapped = header + chunks[1] + chunks[0] + b"".join(chunks[2:])
    with pytest.raises(IntegrityFailure):
        b"".join(decrypt_stream(dek, b"rec|1", io.BytesIO(swapped)))
    with pytest.raises(IntegrityFailure):
        b"".join(decrypt_stream(dek, b"rec|2", io.BytesIO(enc)))  # other recording's AD
