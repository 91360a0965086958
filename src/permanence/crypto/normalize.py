"""Canonical forms of identifiers, so that blind indexes match however a value was typed."""

from __future__ import annotations

import re
import unicodedata

import phonenumbers

from permanence.errors import ValidationFailed

_SPACES = re.compile(r"\s+")
_NAME_PUNCT = re.compile(r"[-'’.,]")


def phone_e164(raw: str, region: str = "FR") -> str:
    """E.164 form of a phone number; national numbers are read in ``region``."""
    try:
        num = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValidationFailed("phone number could not be read") from None
    if not phonenumbers.is_possible_number(num):
        raise ValidationFailed("phone number is not a possible number")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def email(raw: str) -> str:
    value = raw.strip()
    local, sep, domain = value.rpartition("@")
    if not sep or not local or not domain or " " in value:
        raise ValidationFailed("e-mail address is not valid")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValidationFailed("e-mail domain is not valid") from None
    return f"{local.lower()}@{domain.lower()}"


def name(raw: str) -> str:
    """Case-folded, accents stripped, punctuation to spaces, tokens sorted.

    Sorting makes "Dupont Marie" and "Marie Dupont" one index value: callers give their names
    in either order on the phone.
    """
    folded = unicodedata.normalize("NFKD", raw.casefold())
    stripped = "".join(c for c in folded if not unicodedata.combining(c))
    tokens = _SPACES.split(_NAME_PUNCT.sub(" ", stripped).strip())
    if not tokens or tokens == [""]:
        raise ValidationFailed("name is empty")
    return " ".join(sorted(tokens))
