from __future__ import annotations

import re

import pytest
import stdnum.fr.nir
import stdnum.fr.siren
import stdnum.fr.siret
import stdnum.iban
import stdnum.luhn
from hypothesis import given, settings
from hypothesis import strategies as st

from permanence.pii.checksums import (
    IBAN_LENGTHS,
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


def test_a_siret_needs_a_valid_siren() -> None:
    siret = "00000000100008"  # Luhn-valid over 14 digits, but its SIREN 000000001 is not
    assert luhn_valid(siret) and not siren_valid(siret[:9])
    assert not siret_valid(siret)


def test_la_poste_siret_exception() -> None:
    # La Poste establishments: digit sum multiple of 5, Luhn not required.
    siret = "35600000000047"
    assert sum(map(int, siret)) % 5 == 0
    assert not luhn_valid(siret)
    assert siret_valid(siret)


# --- against an independent implementation ----------------------------------------------------
# python-stdnum (Arthur de Jong, LGPL) implements the same public algorithms from their
# specifications and carries the SWIFT IBAN registry: our validators must agree with it.

_DIGITS = st.text(alphabet="0123456789", min_size=0, max_size=20)
_SAME = settings(max_examples=150, derandomize=True, deadline=None)


@_SAME
@given(_DIGITS)
def test_luhn_agrees_with_stdnum(digits: str) -> None:
    assert luhn_valid(digits) == (bool(digits) and stdnum.luhn.is_valid(digits))


@_SAME
@given(st.text(alphabet="0123456789", min_size=8, max_size=8), st.integers(0, 9))
def test_siren_agrees_with_stdnum(partial: str, last: int) -> None:
    for candidate in (partial + str(last), luhn_complete(partial)):
        assert siren_valid(candidate) == stdnum.fr.siren.is_valid(candidate)


@_SAME
@given(st.text(alphabet="0123456789", min_size=13, max_size=13), st.integers(0, 9))
def test_siret_agrees_with_stdnum(partial: str, last: int) -> None:
    for candidate in (partial + str(last), luhn_complete(partial)):
        if candidate.startswith(_LA_POSTE):
            continue  # see test_la_poste_siret_exception: we accept a superset there
        assert siret_valid(candidate) == stdnum.fr.siret.is_valid(candidate)


_LA_POSTE = "356000000"


def test_la_poste_range_is_luhn_or_a_multiple_of_five() -> None:
    """stdnum accepts only the digit-sum rule in La Poste's range (Luhn for its head office,
    ...048); we accept either, so that no La Poste SIRET escapes the detector."""
    for tail in range(0, 100000, 7):  # a seventh of the range: every digit-sum residue
        siret = f"{_LA_POSTE}{tail:05d}"
        if stdnum.fr.siret.is_valid(siret):
            assert siret_valid(siret), siret
    assert siret_valid("35600000000048") and luhn_valid("35600000000048")
    assert not siret_valid("35600000000049")  # digit sum 49, not Luhn either
    assert not siret_valid("3560000000004")  # 13 digits
    assert not siret_valid("3560000000004x")


_NIR_BODY = st.builds(
    lambda first, mid, dept, rest: f"{first}{mid}{dept}{rest}",
    st.sampled_from("12378"),
    st.text(alphabet="0123456789", min_size=4, max_size=4),
    st.sampled_from(["2A", "2B", "20", "19", "18", "75", "99", "01"]),
    st.text(alphabet="0123456789", min_size=6, max_size=6),
)


@_SAME
@given(_NIR_BODY, st.integers(0, 99))
def test_nir_agrees_with_stdnum(body: str, key: int) -> None:
    right = stdnum.fr.nir.calc_check_digits(body + "00")
    assert nir_key(body) == int(right)
    for nir in (f"{body}{key:02d}", f"{body}{right}"):
        assert nir_valid(nir) == stdnum.fr.nir.is_valid(nir)
        assert nir_valid(" ".join([nir[:1], nir[1:7], nir[7:13], nir[13:]])) == nir_valid(nir)


def test_nir_refuses_malformed_bodies_without_raising() -> None:
    assert nir_key("185057800608") is None  # 12 characters
    assert nir_key("18505780060845") is None  # 14
    assert nir_key("18505x8006084") is None
    assert nir_key("185052C006084") is None  # only 2A and 2B are departments with a letter
    assert nir_key("1850５78006084") is None  # a full-width digit is not an ASCII digit
    assert nir_key("18505２A06084") is None
    assert not nir_valid("1850578006084ab")


def _registry_iban(country: str, bban_length_delta: int = 0) -> str:
    """A checksum-valid IBAN of the registry's structure for ``country`` (plus some digits)."""
    structure = stdnum.iban._ibandb.info(country)[0][1]["bban"]
    filler = {"n": "1", "a": "B", "c": "7"}
    bban = "".join(
        filler[kind] * int(width) for width, kind in re.findall(r"(\d+)!([nac])", structure)
    )
    bban = bban + "1" * bban_length_delta if bban_length_delta >= 0 else bban[:bban_length_delta]
    check = stdnum.iban.calc_check_digits(f"{country}00{bban}")
    return f"{country}{check}{bban}"


# Not members of the SWIFT registry: their banks publish IBANs of these lengths (the
# "experimental" IBANs listed by iban.com); checked for their length only.
_OUTSIDE_REGISTRY = {"DZ": 26, "MA": 28, "SN": 28}


@pytest.mark.parametrize("country", sorted(_OUTSIDE_REGISTRY))
def test_iban_lengths_outside_the_registry(country: str) -> None:
    assert stdnum.iban._ibandb.info(country)[0][1] == {}
    length = _OUTSIDE_REGISTRY[country]
    for bban in ("1" * (length - 4), "1" * (length - 5), "1" * (length - 3)):
        iban = f"{country}{stdnum.iban.calc_check_digits(f'{country}00{bban}')}{bban}"
        assert iban_valid(iban) == (len(iban) == length)


@pytest.mark.parametrize("country", sorted(set(IBAN_LENGTHS) - set(_OUTSIDE_REGISTRY)))
def test_iban_length_table_matches_the_swift_registry(country: str) -> None:
    iban = _registry_iban(country)
    stdnum.iban.validate(iban, check_country=False)  # the registry's own structure
    assert IBAN_LENGTHS[country] == len(iban)
    assert iban_valid(iban)
    assert not iban_valid(_registry_iban(country, +1))
    assert not iban_valid(_registry_iban(country, -1))


# --- edges the properties above do not reach ---------------------------------------------------


def _mod97(text: str) -> int:
    """ISO 7064 MOD 97-10 of an IBAN-shaped string, spelt out here (letters A=10 … Z=35)."""
    moved = text[4:] + text[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97


def _with_remainder(prefix: str, length: int, remainder: int = 1) -> str:
    """A string of ``length`` starting with ``prefix`` whose MOD 97-10 is ``remainder``."""
    for k in range(10**6):
        candidate = prefix + f"{k:0{length - len(prefix)}d}"
        if _mod97(candidate) == remainder:
            return candidate
    raise AssertionError("unreachable")


def test_siren_and_siret_lengths_are_exact() -> None:
    assert luhn_valid("18") and not siren_valid("18")
    siren = luhn_complete("40483304")
    assert not siren_valid(siren + "0") and not siren_valid(luhn_complete(siren))
    assert not siret_valid(luhn_complete(siren + "000"))  # 13 digits, Luhn-valid
    assert not siret_valid(luhn_complete(siren + "00000"))  # 15 digits, Luhn-valid
    assert siret_valid(luhn_complete(siren + "0001"))


def test_iban_overall_length_bounds_for_a_country_outside_the_table() -> None:
    assert "ZZ" not in IBAN_LENGTHS
    for length, valid in ((14, False), (15, True), (34, True), (35, False)):
        iban = _with_remainder("ZZ00", length)
        assert _mod97(iban) == 1
        assert iban_valid(iban) is valid, length


def test_an_iban_whose_remainder_is_zero_is_refused() -> None:
    iban = _with_remainder("ZZ00", 20, remainder=0)
    assert not iban_valid(iban)


@pytest.mark.parametrize("prefix", ["12", "ZZA1", "ZZ1A", "ZZAB"])
def test_country_letters_and_check_digits_are_required(prefix: str) -> None:
    """Even when the MOD 97 sum happens to come out right."""
    iban = _with_remainder(prefix.ljust(4, "0"), 22)
    assert _mod97(iban) == 1
    assert not iban_valid(iban)


@pytest.mark.parametrize("junk", ["-", "é", "_", "/"])
def test_other_characters_are_refused_without_raising(junk: str) -> None:
    iban = iban_with_check("FR", "30006000011234567890189")
    assert not iban_valid(iban[:8] + junk + iban[8:])  # one too many for France
    assert not iban_valid(iban[:8] + junk + iban[9:])  # the right length


def test_a_nir_is_fifteen_characters_exactly() -> None:
    # Bodies whose key has one digit, and the same with a key written on three.
    body = next(b for b in (f"1850578006{k:03d}" for k in range(1000)) if nir_key(b) < 10)
    key = nir_key(body)
    assert nir_valid(f"{body}0{key}")
    assert not nir_valid(f"{body}{key}")  # 14 characters
    assert not nir_valid(f"{body}00{key}")  # 16 characters
    assert not nir_valid(f"{body}A{key}")  # a letter in the key, without raising
