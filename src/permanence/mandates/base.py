"""The building blocks of a mandate's sections: the normalisers shared with forms, the
annotated scalar types, the vocabularies (legal bases, field types, retention kinds, ...),
the legal maxima and `_Model`, the frozen base every section builds on.
"""

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
)

from permanence.mandates.durations import IsoDuration

_PHONE_CHARS = re.compile(r"\+?[0-9 ().\-/]{2,30}")


def normalise_phone(value: str, region: str = "FR") -> str:
    """A valid phone number in E.164 (`+33478000001`); national numbers use `region`."""
    number = None
    # phonenumbers reads letters as keypad digits (vanity numbers); here they are typos.
    if _PHONE_CHARS.fullmatch(value.strip()):
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValueError(
            "not a valid phone number (give it in E.164, e.g. +33478000001, or as a French number)"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_EMAIL_LOCAL = re.compile(r"[^\s@\"<>(),;:\[\]\\]+")


def normalise_email(value: str) -> str:
    """An e-mail address, trimmed, with its domain lower-cased and checked as IDNA."""
    local, at, domain = value.strip().rpartition("@")
    domain = domain.lower().rstrip(".")
    valid = bool(at) and _EMAIL_LOCAL.fullmatch(local) is not None and "." in domain
    if valid:
        try:
            ascii_domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            valid = False
        else:
            labels = ascii_domain.split(".")
            valid = all(re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", x) for x in labels)
    if not valid:
        raise ValueError("not a valid e-mail address")
    return f"{local}@{domain}"


_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_CODE = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
_FIELD_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_SECRET_REF = re.compile(r"(env|file|vault):[A-Za-z0-9_./:-]+")
# Names that suggest a French social security number (NIR): only purposes listed in
# décret 2019-341 may collect it, which a télésecrétariat mandate never is.
_NIR_NAME = re.compile(r"(^|_)(nir|secu|securite_sociale|social_security|insee)(_|$)")


def _check(pattern: re.Pattern[str], message: str) -> AfterValidator:
    def validate(value: str) -> str:
        if pattern.fullmatch(value) is None:
            raise ValueError(message)
        return value

    return AfterValidator(validate)


def _https(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL")
    return value


def _rights_contact(value: str) -> str:
    if value.startswith("https://"):
        return _https(value)
    try:
        return normalise_email(value)
    except ValueError:
        raise ValueError("must be an e-mail address or an https:// URL") from None


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Slug = Annotated[
    str,
    _check(_SLUG, "must be a slug: lower-case letters, digits and single hyphens (e.g. cabinet-x)"),
]
Code = Annotated[
    str,
    _check(_CODE, "must be a code: lower-case letters and digits, '-' or '_' between words"),
]
FieldName = Annotated[str, _check(_FIELD_NAME, "must be a snake_case name (e.g. date_of_birth)")]
HhMm = Annotated[str, _check(_HHMM, 'must be a time "HH:MM" (00:00 to 23:59)')]
Email = Annotated[str, AfterValidator(normalise_email)]
Phone = Annotated[str, AfterValidator(normalise_phone)]
HttpsUrl = Annotated[str, AfterValidator(_https)]
CountryCode = Annotated[
    str, _check(re.compile(r"[A-Z]{2}"), "must be an ISO 3166-1 alpha-2 country code (e.g. US)")
]


class MandateKind(StrEnum):
    MEDICAL = "medical"
    LEGAL = "legal"
    TRADES = "trades"
    SME = "sme"
    SUPPORT = "support"
    OTHER = "other"


class LegalBasis(StrEnum):
    """GDPR Art. 6(1) (a)-(f)."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"
    PUBLIC_TASK = "public_task"
    LEGITIMATE_INTEREST = "legitimate_interest"


class SpecialCategoryBasis(StrEnum):
    """GDPR Art. 9(2) exceptions allowing special-category (e.g. health) data."""

    ART9_2_A = "art9_2_a"  # explicit consent
    ART9_2_B = "art9_2_b"  # employment and social security law
    ART9_2_C = "art9_2_c"  # vital interests, subject incapable of consent
    ART9_2_D = "art9_2_d"  # not-for-profit body, its members
    ART9_2_E = "art9_2_e"  # made manifestly public by the subject
    ART9_2_F = "art9_2_f"  # legal claims
    ART9_2_G = "art9_2_g"  # substantial public interest
    ART9_2_H = "art9_2_h"  # care by a health professional bound by secrecy (Art. 9(3))
    ART9_2_I = "art9_2_i"  # public health
    ART9_2_J = "art9_2_j"  # archiving, research, statistics


class FieldType(StrEnum):
    TEXT = "text"
    PHONE = "phone"
    EMAIL = "email"
    DATE = "date"
    DATETIME = "datetime"
    BOOL = "bool"
    INTEGER = "integer"
    CHOICE = "choice"
    FREE_TEXT = "free_text"


TEXTUAL_TYPES = frozenset({FieldType.TEXT, FieldType.FREE_TEXT, FieldType.EMAIL})


class FieldCategory(StrEnum):
    IDENTITY = "identity"
    CONTACT = "contact"
    ADMINISTRATIVE = "administrative"
    HEALTH = "health"
    FINANCIAL = "financial"
    FREE_TEXT = "free_text"
    OTHER = "other"


class RetentionKind(StrEnum):
    MESSAGE = "message"
    APPOINTMENT = "appointment"
    CALL_LOG = "call_log"
    CONSENT = "consent"
    RECORDING = "recording"
    EVALUATION = "evaluation"
    RIGHTS_REQUEST = "rights_request"


# Legal maxima (CNIL): recordings 6 months, analysis documents 1 year, call logs 1 year.
LEGAL_MAXIMA: Mapping[RetentionKind, tuple[IsoDuration, str]] = {
    RetentionKind.RECORDING: (
        IsoDuration(months=6),
        "CNIL: call recordings are kept 6 months at most",
    ),
    RetentionKind.EVALUATION: (
        IsoDuration(months=12),
        "CNIL: evaluation grids and reports are kept 1 year at most",
    ),
    RetentionKind.CALL_LOG: (IsoDuration(years=1), "call logs are kept 1 year at most"),
}


def _over_maximum(kind: RetentionKind, value: IsoDuration, where: str) -> str | None:
    limit = LEGAL_MAXIMA.get(kind)
    if limit is not None and value.exceeds(limit[0]):
        return f"{where} {value} exceeds the legal maximum {limit[0]} ({limit[1]})"
    return None


class RecordingMode(StrEnum):
    SAMPLING = "sampling"
    PERIODS = "periods"


class Safeguard(StrEnum):
    """GDPR Chapter V transfer tools."""

    ADEQUACY_DECISION = "adequacy_decision"  # Art. 45
    STANDARD_CONTRACTUAL_CLAUSES = "standard_contractual_clauses"  # Art. 46(2)(c)
    BINDING_CORPORATE_RULES = "binding_corporate_rules"  # Art. 47
    DEROGATION_ART49 = "derogation_art49"  # Art. 49


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    @model_serializer(mode="wrap")
    def _omit_absent_optionals(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> Any:
        # Optional keys left out stay out of dumps, so canonical YAML reads like what people
        # write; keys that are required-but-nullable (controller.dpo) are always written.
        data = handler(self)
        if isinstance(data, dict):
            for name, spec in type(self).model_fields.items():
                if not spec.is_required() and spec.default is None and getattr(self, name) is None:
                    data.pop(spec.serialization_alias or spec.alias or name, None)
                    data.pop(name, None)
        return data
