from __future__ import annotations

import pytest

from permanence.pii.checksums import (
    iban_valid,
    luhn_valid,
    nir_key,
    nir_valid,
    siren_valid,
    siret_valid,
)

from ._factories import iban_with_check, luhn_complete, nir_with_key


def test_luhn_known_values() -> None:
    assert luhn_valid("4970101234567893")
    assert not luhn_valid("4970101234567890")
    assert not luhn_valid("49701012345678x3")
    assert not luhn_valid("")


def test_nir_key_formula() -> None:
    body = "1850578006084"
    assert nir_key(body) == 97 - int(body) % 97
    assert nir_valid(nir_with_key(body))


@pytest.mark.parametrize("wrong", [1, 2, 50, 96])
def test_nir_with_wrong_key_is_rejected(wrong: int) -> None:
    body = "2690575123456"
    good = nir_with_key(body)
    bad_key = (int(good[-2:]) + wrong - 1) % 97 + 1
    assert bad_key != int(good[-2:])
    assert nir_valid(good)
    assert not nir_valid(f"{body}{bad_key:02d}")


def test_nir_corsica_substitution() -> None:
    for dept, code in (("2A", "19"), ("2B", "18")):
        body = f"18506{dept}004012"
        expected = 97 - int(body.replace(dept, code)) % 97
        assert nir_key(body) == expected
        assert nir_valid(f"{body}{expected:02d}")
        # the same digits with the plain numeric department do not share the key
        assert nir_key(body.replace(dept, "20")) != expected


def test_nir_accepts_spaces_and_rejects_bad_shape() -> None:
    nir = nir_with_key("1850578006084")
    spaced = " ".join([nir[0], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13], nir[13:]])
    assert nir_valid(spaced)
    assert not nir_valid(nir[:-1])
    assert not nir_valid("5" + nir[1:])  # first digit is the sex: 1/2 (3, 7, 8 special)


def test_iban_mod97() -> None:
    iban = iban_with_check("FR", "30006000011234567890189")
    assert iban_valid(iban)
    assert iban_valid(iban.lower())
    assert iban_valid(" ".join(iban[i : i + 4] for i in range(0, len(iban), 4)))
    i = next(k for k in range(4, len(iban) - 1) if iban[k] != iban[k + 1])
    swapped = iban[:i] + iban[i + 1] + iban[i] + iban[i + 2 :]
    assert not iban_valid(swapped)  # mod 97 catches adjacent transpositions
    typo = iban[:-1] + str((int(iban[-1]) + 1) % 10)
    assert not iban_valid(typo)


def test_iban_length_is_checked_per_country() -> None:
    # A checksum-valid string of the wrong length for FR is not a French IBAN.
    assert not iban_valid(iban_with_check("FR", "3000600001123456789018"))


def test_siren_siret() -> None:
    siren = luhn_complete("73282932")
    assert siren_valid(siren)
    assert not siren_valid(siren[:-1] + str((int(siren[-1]) + 1) % 10))
    siret = luhn_complete(siren + "0007")
    assert siret_valid(siret)
    assert not siret_valid(siret[:-1] + str((int(siret[-1]) + 3) % 10))
    assert not siren_valid(siret)


def test_la_poste_siret_exception() -> None:
    # La Poste establishments: digit sum multiple of 5, Luhn not required.
    siret = "35600000000047"
    assert sum(map(int, siret)) % 5 == 0
    assert not luhn_valid(siret)
    assert siret_valid(siret)
