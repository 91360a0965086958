"""Check-digit validators for the structured identifiers.

All validators take the identifier with separators already removed (or tolerate
spaces, where noted) and return a bool; they never raise on malformed input.
"""

from __future__ import annotations

import string

__all__ = [
    "IBAN_LENGTHS",
    "iban_valid",
    "luhn_valid",
    "nir_key",
    "nir_valid",
    "siren_valid",
    "siret_valid",
]

# La Poste's establishments share one SIREN whose SIRET numbers do not satisfy Luhn;
# INSEE documents the exception: the digit sum must be a multiple of 5 instead.
_LA_POSTE_SIREN = "356000000"

# Registry lengths (ISO 13616) for the countries a French answering service meets.
# An IBAN from a country missing here is still accepted if its length is plausible.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AT": 20, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "DZ": 26,
    "EE": 20, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "MA": 28, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
    "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24,
    "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SN": 28, "TN": 24,
    "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}  # fmt: skip

_IBAN_ALNUM = frozenset(string.ascii_uppercase + string.digits)


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check used by payment cards, SIREN and SIRET."""
    if not digits.isdigit() or not digits.isascii():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def siren_valid(digits: str) -> bool:
    """A SIREN is 9 digits with a Luhn check digit."""
    return len(digits) == 9 and luhn_valid(digits)


def siret_valid(digits: str) -> bool:
    """A SIRET is SIREN + 5-digit establishment number, Luhn over all 14 digits; its SIREN
    must itself be valid."""
    if len(digits) != 14 or not siren_valid(digits[:9]) or not digits.isdigit():
        return False
    if digits.startswith(_LA_POSTE_SIREN):
        return luhn_valid(digits) or sum(ord(c) - 48 for c in digits) % 5 == 0
    return luhn_valid(digits)


def iban_valid(iban: str) -> bool:
    """ISO 13616 mod-97 check; ``iban`` may contain spaces, case is ignored."""
    s = iban.replace(" ", "").upper()
    if len(s) < 15 or len(s) > 34 or not set(s) <= _IBAN_ALNUM:
        return False
    country = s[:2]
    if not country.isalpha() or not s[2:4].isdigit():
        return False
    expected = IBAN_LENGTHS.get(country)
    if expected is not None and len(s) != expected:
        return False
    rearranged = s[4:] + s[:4]
    # int(c, 36) maps 0-9 to themselves and A-Z to 10-35, exactly the IBAN rule.
    numeric = "".join(str(int(c, 36)) for c in rearranged)
    return int(numeric) % 97 == 1


def _nir_number(body: str) -> int | None:
    """The 13-character NIR body as an integer, with the Corsica substitution."""
    if len(body) != 13:
        return None
    dept = body[5:7].upper()
    # Corsican departments 2A/2B are replaced by 19/18 for the key computation.
    if dept == "2A":
        body = body[:5] + "19" + body[7:]
    elif dept == "2B":
        body = body[:5] + "18" + body[7:]
    if not body.isdigit() or not body.isascii():
        return None
    return int(body)


def nir_key(body: str) -> int | None:
    """Key of a 13-character NIR body: 97 - (number mod 97); None if malformed."""
    number = _nir_number(body)
    if number is None:
        return None
    return 97 - number % 97


def nir_valid(nir: str) -> bool:
    """15-character NIR (13 + 2-digit key), spaces ignored, 2A/2B accepted."""
    s = nir.replace(" ", "")
    if len(s) != 15 or not s[13:].isdigit():
        return False
    if s[0] not in "12378":
        return False
    key = nir_key(s[:13])
    return key is not None and key == int(s[13:])
