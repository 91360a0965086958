"""The mandate: a client's documented instructions (GDPR Art. 28(3)(a)) as validated data.

Pure module: no database, no web. `parse_mandate` turns YAML/JSON text or a mapping into a
`Mandate`, or raises `MandateInvalid` listing *every* problem found, each naming its location.
A `Mandate` built here is immutable (frozen models); a change is a new document and, once
imported, a new version.
"""

import calendar
import difflib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self, overload
from urllib.parse import urlsplit

import phonenumbers
import pydantic
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    StringConstraints,
    Tag,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, ErrorDetails, PydanticCustomError, core_schema

from permanence.mandates.queueing import Queueing

__all__ = [
    "LEGAL_MAXIMA",
    "ConsentWording",
    "Controller",
    "Dpo",
    "EmailNotificationRecipient",
    "Field",
    "FieldCategory",
    "FieldNotInPurpose",
    "FieldType",
    "Hosting",
    "IsoDuration",
    "LegalBasis",
    "Mandate",
    "MandateInvalid",
    "MandateKind",
    "MandateUnversioned",
    "Notice",
    "OnCall",
    "OnCallContact",
    "PortalRecipient",
    "Purpose",
    "PurposeNotInMandate",
    "Recipient",
    "Recording",
    "RecordingMode",
    "RecordingPeriod",
    "Retention",
    "RetentionKind",
    "Safeguard",
    "SpecialCategoryBasis",
    "Transfer",
    "WebhookRecipient",
    "diff_mandates",
    "dump_mandate",
    "normalise_email",
    "normalise_phone",
    "parse_duration",
    "parse_mandate",
]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class MandateInvalid(ValueError):
    """A mandate document that cannot be accepted; `.problems` lists every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"the mandate has {count} problem{'s' if count != 1 else ''}:"
        return "\n".join([head, *(f"- {p}" for p in self.problems)])


class PurposeNotInMandate(LookupError):
    """The mandate declares no purpose with this code."""

    def __init__(self, code: str, account: str | None = None) -> None:
        self.code = code
        self.account = account
        where = f" of account '{account}'" if account else ""
        super().__init__(f"purpose '{code}' is not declared by the mandate{where}")

    def __str__(self) -> str:
        return str(self.args[0])


class FieldNotInPurpose(LookupError):
    """The purpose does not declare (or reference) a field with this name."""

    def __init__(self, name: str, purpose_code: str) -> None:
        self.name = name
        self.purpose_code = purpose_code
        super().__init__(f"field '{name}' is not declared by purpose '{purpose_code}'")

    def __str__(self) -> str:
        return str(self.args[0])


class MandateUnversioned(ValueError):
    """The mandate has no version yet: versions are assigned when it is imported."""


def _reject(problems: list[str]) -> None:
    """Raise all problems of one object at once; `_translate` expands them with locations."""
    if problems:
        raise PydanticCustomError(
            "mandate_rules", "{summary}", {"summary": "; ".join(problems), "problems": problems}
        )


# --------------------------------------------------------------------------------------------
# ISO-8601 durations
# --------------------------------------------------------------------------------------------

_DURATION = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?"
)

# Start dates used to compare calendar durations: every first and last day of each month over a
# four-year cycle (one leap year), so "never longer than" holds whatever the start date.
_REFERENCE_STARTS: tuple[datetime, ...] = tuple(
    datetime(year, month, day)
    for year in range(2024, 2028)
    for month in range(1, 13)
    for day in (1, calendar.monthrange(year, month)[1])
)


@dataclass(frozen=True, slots=True)
class IsoDuration:
    """An ISO-8601 duration (PnYnMnWnDTnHnMnS, integer components, longer than zero).

    Years and months are calendar units: adding P1M to 31 January gives the last day of
    February. Days are calendar days (wall-clock time is kept across a DST change).
    """

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    @classmethod
    def parse(cls, text: str) -> "IsoDuration":
        match = _DURATION.fullmatch(text.strip().upper())
        if match is None or not any(match.groupdict().values()) or text.strip().endswith("T"):
            raise ValueError(
                "must be an ISO-8601 duration such as P6M, P1Y, P30D or PT30M "
                "(integer components only)"
            )
        parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
        duration = cls(**parts)
        if not any(parts.values()):
            raise ValueError("duration must be longer than zero")
        return duration

    @overload
    def add_to(self, when: datetime) -> datetime: ...
    @overload
    def add_to(self, when: date) -> date: ...
    def add_to(self, when: date) -> date:
        """`when` plus this duration; a `date` only accepts durations without a time part."""
        total_months = self.years * 12 + self.months
        month_index = when.month - 1 + total_months
        year, month = when.year + month_index // 12, month_index % 12 + 1
        day = min(when.day, calendar.monthrange(year, month)[1])
        shifted = when.replace(year=year, month=month, day=day)
        shifted = shifted + timedelta(days=self.weeks * 7 + self.days)
        clock = timedelta(hours=self.hours, minutes=self.minutes, seconds=self.seconds)
        if not clock:
            return shifted
        if not isinstance(shifted, datetime):
            raise TypeError(f"cannot add {self} (it has a time part) to a date")
        return shifted + clock

    def __radd__(self, other: datetime) -> datetime:
        return self.add_to(other)

    def exceeds(self, limit: "IsoDuration") -> bool:
        """True if, from some start date, this duration ends later than `limit` does."""
        return any(self.add_to(s) > limit.add_to(s) for s in _REFERENCE_STARTS)

    def approximate(self) -> timedelta:
        """A representative length (from 1 January 2025), for sorting and display only."""
        start = datetime(2025, 1, 1)
        return self.add_to(start) - start

    def __str__(self) -> str:
        units = [(self.years, "Y"), (self.months, "M"), (self.weeks, "W"), (self.days, "D")]
        clock = [(self.hours, "H"), (self.minutes, "M"), (self.seconds, "S")]
        text = "P" + "".join(f"{n}{u}" for n, u in units if n)
        if any(n for n, _ in clock):
            text += "T" + "".join(f"{n}{u}" for n, u in clock if n)
        return text

    @classmethod
    def _coerce(cls, value: object) -> "IsoDuration":
        if isinstance(value, IsoDuration):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        raise ValueError("must be an ISO-8601 duration string such as P6M or PT30M")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._coerce, serialization=core_schema.to_string_ser_schema()
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "duration", "examples": ["P6M", "PT30M"]}


def parse_duration(text: str) -> IsoDuration:
    """Parse an ISO-8601 duration; raises ValueError with a readable message."""
    return IsoDuration.parse(text)


# --------------------------------------------------------------------------------------------
# Normalisers shared with forms (their messages never repeat the value: it may be personal)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Annotated scalar types
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Vocabularies
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


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


# French and English labels for common field names, used when a field has no label.
_DEFAULT_LABELS: Mapping[str, tuple[str, str]] = {
    "last_name": ("Nom", "Last name"),
    "first_name": ("Prénom", "First name"),
    "phone": ("Téléphone", "Phone"),
    "mobile": ("Portable", "Mobile phone"),
    "email": ("Adresse e-mail", "E-mail address"),
    "date_of_birth": ("Date de naissance", "Date of birth"),
    "address": ("Adresse", "Address"),
    "postal_code": ("Code postal", "Postcode"),
    "city": ("Ville", "City"),
    "company": ("Société", "Company"),
    "note": ("Note", "Note"),
    "message": ("Message", "Message"),
    "reason": ("Motif", "Reason"),
    "subject": ("Objet", "Subject"),
    "description": ("Description", "Description"),
    "urgency": ("Urgence", "Urgency"),
    "new_patient": ("Nouveau patient", "New patient"),
    "new_client": ("Nouveau client", "New client"),
    "preferred_slot": ("Créneau souhaité", "Preferred slot"),
    "callback_at": ("Rappeler le", "Call back at"),
    "case_reference": ("Référence du dossier", "Case reference"),
}


def _humanise(name: str) -> str:
    return name.replace("_", " ").capitalize()


class Field(_Model):
    """One piece of data a purpose may collect."""

    name: FieldName
    type: FieldType
    category: FieldCategory
    required: bool = False
    special_category: bool = False
    max_length: int | None = pydantic.Field(default=None, ge=1, le=10_000)
    choices: tuple[Text, ...] | None = None
    label_fr: Text | None = None
    label_en: Text | None = None

    @model_validator(mode="before")
    @classmethod
    def _health_is_special_category(cls, data: Any) -> Any:
        if (
            isinstance(data, Mapping)
            and data.get("category") == FieldCategory.HEALTH
            and "special_category" not in data
        ):
            return {**data, "special_category": True}
        return data

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        problems = []
        if self.category is FieldCategory.HEALTH and not self.special_category:
            problems.append(
                f"field '{self.name}': health data is always special-category data (Art. 9); "
                "special_category cannot be false"
            )
        if self.type is FieldType.CHOICE and not self.choices:
            problems.append(f"field '{self.name}': a choice field needs a non-empty 'choices' list")
        if self.type is not FieldType.CHOICE and self.choices is not None:
            problems.append(f"field '{self.name}': 'choices' is only for fields of type choice")
        if self.choices and len(set(self.choices)) != len(self.choices):
            problems.append(f"field '{self.name}': 'choices' has duplicates")
        if self.max_length is not None and self.type not in TEXTUAL_TYPES:
            problems.append(
                f"field '{self.name}': 'max_length' only applies to text, free_text and email"
            )
        if _NIR_NAME.search(self.name):
            problems.append(
                f"field '{self.name}': the social security number (NIR) may only be collected "
                "for purposes listed in décret 2019-341; a mandate cannot declare it"
            )
        _reject(problems)
        return self

    @property
    def display_label_fr(self) -> str:
        """`label_fr`, or a French label derived from the name."""
        if self.label_fr:
            return self.label_fr
        return _DEFAULT_LABELS.get(self.name, (_humanise(self.name), ""))[0]

    @property
    def display_label_en(self) -> str:
        """`label_en`, or an English label derived from the name."""
        if self.label_en:
            return self.label_en
        return _DEFAULT_LABELS.get(self.name, ("", _humanise(self.name)))[1]


class Retention(_Model):
    """How long each kind of record of a purpose is kept (ISO-8601 durations)."""

    message: IsoDuration | None = None
    appointment: IsoDuration | None = None
    call_log: IsoDuration | None = None
    consent: IsoDuration | None = None
    recording: IsoDuration | None = None
    evaluation: IsoDuration | None = None
    rights_request: IsoDuration | None = None

    def get(self, kind: RetentionKind | str) -> IsoDuration | None:
        value: IsoDuration | None = getattr(self, RetentionKind(kind).value)
        return value

    def items(self) -> Iterator[tuple[RetentionKind, IsoDuration]]:
        for kind in RetentionKind:
            value = self.get(kind)
            if value is not None:
                yield kind, value

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        problems = []
        if not any(True for _ in self.items()):
            problems.append(
                "declares no retention period (storage limitation, Art. 5(1)(e)); give at least "
                "one of: " + ", ".join(RetentionKind)
            )
        for kind, value in self.items():
            problem = _over_maximum(kind, value, f"{kind} retention")
            if problem:
                problems.append(problem)
        _reject(problems)
        return self


class ConsentWording(_Model):
    """The exact consent wording read to the caller; its version is stored with each consent."""

    version: Text
    text_fr: Text
    text_en: Text | None = None


def _field_item_kind(value: Any) -> str | None:
    if isinstance(value, Mapping | Field):
        return "inline-field"
    if isinstance(value, str):
        return "field-ref"
    return None


FieldItem = Annotated[
    Annotated[Field, Tag("inline-field")] | Annotated[FieldName, Tag("field-ref")],
    Discriminator(
        _field_item_kind,
        custom_error_type="field_item",
        custom_error_message=(
            "must be a field definition (a mapping) or the name of a field of the top-level "
            "'fields' catalogue"
        ),
    ),
]
_FIELD_ITEM_TAGS = frozenset({"inline-field", "field-ref"})


class Purpose(_Model):
    """A purpose of processing: its Art. 6 basis, Art. 9 basis, fields and retention."""

    code: Code
    label_fr: Text
    label_en: Text | None = None
    legal_basis: LegalBasis
    legitimate_interest: Text | None = None
    special_category_basis: SpecialCategoryBasis | None = None
    # Art. 10 GDPR / loi 78-17 art. 46: who may process offence data and why (e.g. a lawyer
    # for the defence of their client). Without it, such data is refused in free text.
    criminal_data_basis: Text | None = None
    fields: tuple[FieldItem, ...] = pydantic.Field(min_length=1)
    retention: Retention
    consent_wording: ConsentWording | None = None

    # Catalogue fields this purpose references, bound by the enclosing Mandate.
    _catalogue: dict[str, Field] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        problems: list[str] = []
        if self.legal_basis is LegalBasis.LEGITIMATE_INTEREST and not self.legitimate_interest:
            problems.append(
                "legal_basis is legitimate_interest but 'legitimate_interest' (the interest "
                "pursued, Art. 6(1)(f) and 13(1)(d)) is missing"
            )
        if self.legal_basis is not LegalBasis.LEGITIMATE_INTEREST and self.legitimate_interest:
            problems.append("'legitimate_interest' is only for legal_basis legitimate_interest")
        needs_wording = (
            self.legal_basis is LegalBasis.CONSENT
            or self.special_category_basis is SpecialCategoryBasis.ART9_2_A
        )
        if needs_wording and self.consent_wording is None:
            problems.append(
                "the purpose relies on consent (Art. 6(1)(a) or 9(2)(a)) but has no "
                "'consent_wording' {version, text_fr} to read and record (Art. 7(1))"
            )
        seen: set[str] = set()
        for name in self.field_names:
            if name in seen:
                problems.append(f"field '{name}' is declared twice")
            seen.add(name)
        for item in self.fields:
            if isinstance(item, Field):
                problem = _art9_problem(self, item)
                if problem:
                    problems.append(problem)
        _reject(problems)
        return self

    @property
    def field_names(self) -> tuple[str, ...]:
        """Names of the purpose's fields, inline or referenced, in declaration order."""
        return tuple(item.name if isinstance(item, Field) else item for item in self.fields)

    @property
    def resolved_fields(self) -> tuple[Field, ...]:
        """Inline fields and referenced catalogue fields, in declaration order."""
        resolved = []
        for item in self.fields:
            if isinstance(item, Field):
                resolved.append(item)
            elif item in self._catalogue:
                resolved.append(self._catalogue[item])
            else:
                raise FieldNotInPurpose(item, self.code)
        return tuple(resolved)

    def field(self, name: str) -> Field:
        """The field `name` of this purpose; raises `FieldNotInPurpose`."""
        for candidate in self.resolved_fields:
            if candidate.name == name:
                return candidate
        raise FieldNotInPurpose(name, self.code)

    @property
    def has_special_category(self) -> bool:
        return any(f.special_category for f in self.resolved_fields)


def _art9_problem(purpose: Purpose, field: Field) -> str | None:
    if field.special_category and purpose.special_category_basis is None:
        return (
            f"field '{field.name}' is special-category data ({field.category}) but the purpose "
            "has no Art. 9 basis (special_category_basis)"
        )
    return None


class Dpo(_Model):
    name: Text
    email: Email
    phone: Phone | None = None


class Controller(_Model):
    """The client business: controller of the callers' data (Art. 4(7), 13(1)(a))."""

    name: Text
    address: Text
    contact_email: Email
    dpo: Dpo | None  # required: write `dpo: null` to state there is none
    rights_contact: Annotated[str, AfterValidator(_rights_contact)]
    health_data: bool = False


class Notice(_Model):
    """The layered notice (Art. 13; CNIL/WP260): layer 1 spoken, layer 2 the full text."""

    version: Text
    layer1_fr: Text
    layer1_en: Text | None = None
    layer2_url: HttpsUrl | None = None
    recording_fr: Text | None = None
    recording_en: Text | None = None
    # Keys the caller may press while the first layer is spoken (docs/telephony.md): the full
    # notice by SMS, and English (the first layer, recording notice and prompts in English).
    sms_key: (
        Annotated[str, _check(re.compile(r"[0-9*#]"), "must be one telephone key: 0-9, * or #")]
        | None
    ) = None
    english_key: (
        Annotated[str, _check(re.compile(r"[0-9*#]"), "must be one telephone key: 0-9, * or #")]
        | None
    ) = None

    @model_validator(mode="before")
    @classmethod
    def _version_as_text(cls, data: Any) -> Any:
        # `version: 3` in YAML is an int; a notice version is a label, so accept it as text.
        version = data.get("version") if isinstance(data, Mapping) else None
        if isinstance(version, int) and not isinstance(version, bool):
            return {**data, "version": str(data["version"])}
        return data


class PortalRecipient(_Model):
    kind: Literal["portal"]


class EmailNotificationRecipient(_Model):
    """An e-mail telling the client a message is waiting; never the message itself."""

    kind: Literal["email_notification"]
    to: Email
    personal_data: bool = False

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        if self.personal_data:
            _reject(
                [
                    "personal_data must be false: e-mails to the client carry no personal data, "
                    "only a link to the portal"
                ]
            )
        return self


class WebhookRecipient(_Model):
    kind: Literal["webhook"]
    url: HttpsUrl
    secret_ref: Annotated[
        str,
        _check(
            _SECRET_REF,
            "must name where the signing secret is kept (env:NAME, file:/path or vault:path), "
            "never the secret itself",
        ),
    ]


Recipient = Annotated[
    PortalRecipient | EmailNotificationRecipient | WebhookRecipient,
    pydantic.Field(discriminator="kind"),
]
_RECIPIENT_KINDS = frozenset({"portal", "email_notification", "webhook"})


class OnCallContact(_Model):
    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    name: Text
    phone: Phone
    email: Email | None = None
    from_: HhMm = pydantic.Field(alias="from")
    to: HhMm
    # The weekly rota and validity (mandates/hours.py): the days a window may start on (all
    # when empty) and the dates it is in force, inclusive.
    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = ()
    valid_from: date | None = None
    valid_until: date | None = None

    @property
    def starts(self) -> time:
        return time.fromisoformat(self.from_)

    @property
    def ends(self) -> time:
        return time.fromisoformat(self.to)

    def covers(self, moment: time) -> bool:
        """Whether `moment` is in this contact's window; windows may span midnight."""
        if self.starts < self.ends:
            return self.starts <= moment < self.ends
        return moment >= self.starts or moment < self.ends

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        if self.from_ == self.to:
            _reject(["'from' and 'to' are equal; for the whole day write from 00:00 to 23:59"])
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            _reject([f"valid_until ({self.valid_until}) is before valid_from ({self.valid_from})"])
        if len(set(self.days)) != len(self.days):
            _reject(["days: a day is listed twice"])
        return self


class OnCall(_Model):
    escalation_after: IsoDuration
    contacts: tuple[OnCallContact, ...] = pydantic.Field(min_length=1)
    # Said to a caller forwarded out of hours (after_hours: forward), before the <Dial>.
    notice_fr: Text | None = None
    notice_en: Text | None = None


class RecordingPeriod(_Model):
    start: date
    end: date

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        if self.end < self.start:
            _reject(["the period ends before it starts"])
        return self


class Recording(_Model):
    """Call recording: off by default (Art. 25(2)); never permanent (CNIL)."""

    enabled: bool = False
    mode: RecordingMode | None = None
    sample_rate: float | None = pydantic.Field(default=None, gt=0, le=1)
    periods: tuple[RecordingPeriod, ...] = ()
    objection_key: Annotated[
        str, _check(re.compile(r"[0-9*#]"), "must be one telephone key: 0-9, * or #")
    ] = "9"
    purpose_fr: Text | None = None
    purpose_en: Text | None = None
    retention: IsoDuration | None = None

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        problems: list[str] = []
        if self.retention is not None:
            problem = _over_maximum(RetentionKind.RECORDING, self.retention, "retention")
            if problem:
                problems.append(problem)
        if self.mode is not RecordingMode.SAMPLING and self.sample_rate is not None:
            problems.append("sample_rate is only used with mode: sampling")
        if self.mode is not RecordingMode.PERIODS and self.periods:
            problems.append("periods are only used with mode: periods")
        if self.enabled:
            permanent = "permanent recording of calls is forbidden (CNIL)"
            if self.mode is None:
                problems.append(
                    f"recording is enabled without a mode: {permanent}; choose mode sampling "
                    "(with a sample_rate below 1) or periods"
                )
            elif self.mode is RecordingMode.SAMPLING and self.sample_rate is None:
                problems.append("mode sampling needs a sample_rate between 0 and 1 (exclusive)")
            elif self.mode is RecordingMode.SAMPLING and self.sample_rate == 1:
                problems.append(f"sample_rate 1.0 records every call: {permanent}")
            elif self.mode is RecordingMode.PERIODS and not self.periods:
                problems.append("mode periods needs at least one period {start, end}")
            if self.purpose_fr is None:
                problems.append(
                    "recording is enabled but 'purpose_fr' (why calls are recorded, "
                    "told to callers) is missing"
                )
            if self.retention is None:
                problems.append("recording is enabled but 'retention' (at most P6M) is missing")
        _reject(problems)
        return self


class Transfer(_Model):
    """A transfer outside the EEA (Art. 44-49) and its safeguard."""

    country: CountryCode
    safeguard: Safeguard
    recipient: Text | None = None


class Hosting(_Model):
    provider: Text
    country: CountryCode
    hds_certified: bool = False


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _default_hours() -> dict[str, tuple[str, ...]]:
    day = ("09:00-12:00", "14:00-18:00")
    return {"mon": day, "tue": day, "wed": day, "thu": day, "fri": day}


class Agenda(_Model):
    """When appointments may be booked: opening hours per weekday, slot length, time zone."""

    timezone: Text = "Europe/Paris"
    slot_minutes: int = pydantic.Field(default=30, ge=5, le=480)
    hours: dict[str, tuple[Text, ...]] = pydantic.Field(default_factory=_default_hours)

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        problems: list[str] = []
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"unknown time zone '{self.timezone}'")
        for day, ranges in self.hours.items():
            if day not in _WEEKDAYS:
                problems.append(f"hours: '{day}' is not a weekday ({', '.join(_WEEKDAYS)})")
            for r in ranges:
                start, sep, end = r.partition("-")
                try:
                    ok = bool(sep) and time.fromisoformat(start) < time.fromisoformat(end)
                except ValueError:
                    ok = False
                if not ok:
                    problems.append(f"hours.{day}: '{r}' is not a range like 09:00-12:00")
        _reject(problems)
        return self

    def ranges(self, weekday: int) -> list[tuple[time, time]]:
        """Opening ranges for a weekday (0 = Monday)."""
        out = []
        for r in self.hours.get(_WEEKDAYS[weekday], ()):
            start, _, end = r.partition("-")
            out.append((time.fromisoformat(start), time.fromisoformat(end)))
        return out


# Opening hours and what happens out of hours (a module of their own; it builds on _Model).
from permanence.mandates.hours import AfterHours, Hours, mandate_problems  # noqa: E402


class Mandate(_Model):
    """A client's documented instructions (Art. 28(3)(a)): one version of them."""

    account: Slug
    version: int | None = pydantic.Field(default=None, ge=1)
    kind: MandateKind
    controller: Controller
    dids: tuple[Phone, ...] = ()
    notice: Notice
    fields: tuple[Field, ...] | None = None
    purposes: tuple[Purpose, ...] = pydantic.Field(min_length=1)
    recipients: tuple[Recipient, ...] = pydantic.Field(min_length=1)
    on_call: OnCall | None = None
    hours: Hours | None = None  # none: every call is answered as in hours
    after_hours: AfterHours | None = None  # with hours, voicemail when absent
    recording: Recording = Recording()
    agenda: Agenda = Agenda()
    transfers: tuple[Transfer, ...] = ()
    hosting: Hosting | None = None
    queue: Queueing = Queueing()  # permanence.mandates.queueing (routing)

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        problems = _catalogue_problems(
            [_Outline.of(i, p) for i, p in enumerate(self.purposes)],
            [(i, f.name, f) for i, f in enumerate(self.fields or ())],
        )
        catalogue = self.catalogue
        for purpose in self.purposes:
            purpose._catalogue = {n: catalogue[n] for n in purpose.field_names if n in catalogue}
        problems += self._document_problems()
        _reject(problems)
        return self

    def _document_problems(self) -> list[str]:
        problems: list[str] = []
        seen_dids: set[str] = set()
        for i, did in enumerate(self.dids):
            if did in seen_dids:
                problems.append(f"dids[{i}]: {did} is listed twice")
            seen_dids.add(did)
        health = [
            (i, p, f)
            for i, p in enumerate(self.purposes)
            for f in _safe_resolved(p)
            if f.category is FieldCategory.HEALTH
        ]
        if health and not self.controller.health_data:
            i, p, f = health[0]
            problems.append(
                f"controller.health_data is false but purposes[{i}] ({p.code}) collects health "
                f"data (field '{f.name}'); set it to true (HDS hosting is then required)"
            )
        for i, p in enumerate(self.purposes):
            if (
                p.special_category_basis is SpecialCategoryBasis.ART9_2_H
                and self.kind is not MandateKind.MEDICAL
            ):
                problems.append(
                    f"purposes[{i}] ({p.code}): special_category_basis art9_2_h (care by a health "
                    "professional bound by secrecy) requires kind: medical"
                )
        if (
            self.hosting is not None
            and self.declares_health_data
            and not self.hosting.hds_certified
        ):
            problems.append(
                "hosting: health data must be hosted by an HDS-certified host "
                "(Code de la santé publique L.1111-8); hds_certified is false"
            )
        rec = self.recording
        if rec.enabled:
            if self.notice.recording_fr is None:
                problems.append(
                    "notice.recording_fr is missing: callers must be told at the start of the call "
                    "that it may be recorded, why, and how to object"
                )
            elif rec.objection_key not in self.notice.recording_fr:
                problems.append(
                    f"notice.recording_fr does not tell callers to press {rec.objection_key} "
                    "(recording.objection_key) to object"
                )
            if self.declares_health_data:
                problems.append(
                    "recording: calls to a mandate with health data may carry health data; "
                    "recording them needs explicit consent (Art. 9(2)(a)), which a recording "
                    "policy cannot collect; keep recording disabled"
                )
        problems += self._key_problems()
        problems += mandate_problems(self)
        return problems

    def _key_problems(self) -> list[str]:
        notice, problems = self.notice, []
        keys = {"notice.sms_key": notice.sms_key, "notice.english_key": notice.english_key}
        if self.recording.enabled:
            keys["recording.objection_key"] = self.recording.objection_key
        used = [(name, key) for name, key in keys.items() if key is not None]
        for i, (name, key) in enumerate(used):
            for other, key2 in used[i + 1 :]:
                if key == key2:
                    problems.append(f"{name} and {other} are the same key ({key})")
        if notice.sms_key is not None:
            for lang, text in (("fr", notice.layer1_fr), ("en", notice.layer1_en)):
                if text is not None and notice.sms_key not in text:
                    problems.append(
                        f"notice.layer1_{lang} does not tell callers to press {notice.sms_key} "
                        "(notice.sms_key) to receive the full notice by SMS"
                    )
        if notice.english_key is not None:
            if notice.layer1_en is None:
                problems.append("notice.english_key offers English but notice.layer1_en is missing")
            if self.recording.enabled and notice.recording_en is None:
                problems.append(
                    "notice.english_key offers English but notice.recording_en is missing"
                )
        return problems

    # -- helpers ---------------------------------------------------------------------------

    @property
    def catalogue(self) -> dict[str, Field]:
        """The top-level field catalogue by name (empty if there is none)."""
        return {f.name: f for f in self.fields or ()}

    def purpose(self, code: str) -> Purpose:
        """The purpose `code`; raises `PurposeNotInMandate`."""
        for candidate in self.purposes:
            if candidate.code == code:
                return candidate
        raise PurposeNotInMandate(code, self.account)

    def retention(
        self, kind: RetentionKind | str, purpose_code: str | None = None
    ) -> IsoDuration | None:
        """How long records of `kind` are kept.

        With a purpose: that purpose's period (for recordings, falling back to the recording
        policy). Without: for recordings, the recording policy's period; otherwise the
        *shortest* period any purpose declares for that kind (privacy by default, Art. 25(2)).
        None means the mandate declares no period: such records must not be kept.
        """
        kind = RetentionKind(kind)
        fallback = self.recording.retention if kind is RetentionKind.RECORDING else None
        if purpose_code is not None:
            return self.purpose(purpose_code).retention.get(kind) or fallback
        if fallback is not None:
            return fallback
        declared = [d for p in self.purposes if (d := p.retention.get(kind)) is not None]
        return min(declared, key=IsoDuration.approximate) if declared else None

    @property
    def notice_version(self) -> str:
        """`"<mandate version>:<notice version>"`, stored with each call that read it."""
        if self.version is None:
            raise MandateUnversioned(
                f"mandate of account '{self.account}' has no version yet (assigned on import)"
            )
        return f"{self.version}:{self.notice.version}"

    @property
    def declares_health_data(self) -> bool:
        return self.controller.health_data or any(
            f.category is FieldCategory.HEALTH for p in self.purposes for f in _safe_resolved(p)
        )


def _safe_resolved(purpose: Purpose) -> tuple[Field, ...]:
    try:
        return purpose.resolved_fields
    except FieldNotInPurpose:  # an unknown reference, reported on its own
        return tuple(f for f in purpose.fields if isinstance(f, Field))


@dataclass(frozen=True)
class _Outline:
    """What the cross-document rules need of a purpose; built from a model or raw input."""

    index: int
    code: str
    has_art9_basis: bool
    refs: tuple[str, ...]

    @classmethod
    def of(cls, index: int, purpose: Purpose) -> "_Outline":
        refs = tuple(item for item in purpose.fields if isinstance(item, str))
        return cls(index, purpose.code, purpose.special_category_basis is not None, refs)


def _catalogue_problems(
    purposes: Sequence[_Outline],
    catalogue: Sequence[tuple[int, str, Field | None]],
    *,
    purposes_complete: bool = True,
) -> list[str]:
    """Cross-document rules on purposes and the field catalogue.

    `catalogue` holds (index, name, field or None if it did not validate). Also run on raw input
    when the document as a whole did not validate, so one pass reports every problem.
    """
    problems: list[str] = []
    by_name: dict[str, Field | None] = {}
    for i, name, field in catalogue:
        if name in by_name:
            problems.append(f"fields[{i}] ({name}): field '{name}' is declared twice")
        by_name.setdefault(name, field)
    first_code: dict[str, int] = {}
    used: set[str] = set()
    for outline in purposes:
        where = f"purposes[{outline.index}] ({outline.code})"
        if outline.code in first_code:
            problems.append(
                f"{where}: duplicate purpose code '{outline.code}' "
                f"(also purposes[{first_code[outline.code]}])"
            )
        first_code.setdefault(outline.code, outline.index)
        for ref in outline.refs:
            used.add(ref)
            if ref not in by_name:
                problems.append(
                    f"{where}: field '{ref}' is not declared: it is neither inline nor in "
                    "the top-level 'fields' catalogue"
                )
                continue
            referenced = by_name[ref]
            if (
                referenced is not None
                and referenced.special_category
                and not outline.has_art9_basis
            ):
                problems.append(
                    f"{where}: field '{ref}' is special-category data ({referenced.category}) but "
                    "the purpose has no Art. 9 basis (special_category_basis)"
                )
    if purposes_complete:
        for i, name, _ in catalogue:
            if name not in used:
                problems.append(
                    f"fields[{i}] ({name}): field '{name}' is declared but no purpose "
                    "collects it (minimisation, Art. 5(1)(c))"
                )
    return problems


# --------------------------------------------------------------------------------------------
# Parsing, error translation, dumping, diffing
# --------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML close to 1.2: `18:00` stays text (not 1080), `NO`/`on` stay text, keys are unique."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool"}
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def _load(source: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MandateInvalid([f"the document is not UTF-8 text (byte {exc.start})"]) from None
    try:
        if source.lstrip().startswith("{"):
            data = json.loads(source)
        else:
            data = yaml.load(source, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except json.JSONDecodeError as exc:
        raise MandateInvalid(
            [f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise MandateInvalid([f"YAML syntax error{where}: {reason}"]) from None
    if not isinstance(data, Mapping):
        raise MandateInvalid(["the document must be a mapping (key: value) at the top level"])
    return data


_MODELS: tuple[type[BaseModel], ...] = (
    Mandate, Controller, Dpo, Notice, Field, Purpose, Retention, ConsentWording, PortalRecipient,
    EmailNotificationRecipient, WebhookRecipient, OnCall, OnCallContact, Recording,
    RecordingPeriod, Transfer, Hosting,
)  # fmt: skip


def _keys(model: type[BaseModel]) -> set[str]:
    return {spec.alias or name for name, spec in model.model_fields.items()}


def _suggestion(key: str, node: object) -> str | None:
    """The key probably meant: among the keys of the models that fit the object's other keys."""
    others = {k for k in node if isinstance(k, str)} - {key} if isinstance(node, Mapping) else set()
    fitting = [_keys(m) for m in _MODELS if others <= _keys(m)] or [_keys(m) for m in _MODELS]
    vocabulary = set().union(*fitting)
    if key in vocabulary:
        return None
    close = difflib.get_close_matches(key, sorted(vocabulary), n=1, cutoff=0.75)
    return close[0] if close else None


def _node_at(loc: Sequence[int | str], raw: object) -> object:
    node = raw
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
        else:
            node = node.get(part) if isinstance(node, Mapping) else None
    return node


_MISSING_HINTS: Mapping[str, str] = {
    "legal_basis": " (the Art. 6(1) basis: " + ", ".join(LegalBasis) + ")",
    "kind": " (one of: " + ", ".join(MandateKind) + ")",
    "dpo": " (write `dpo: null` if the controller has no DPO)",
    "retention": " (how long each kind of record is kept, e.g. message: P3M)",
}


def _clean_loc(loc: Sequence[int | str]) -> tuple[int | str, ...]:
    """Drop union tags pydantic inserts (`inline-field`, a recipient kind) from a location."""
    out: list[int | str] = []
    for i, part in enumerate(loc):
        if i >= 2 and isinstance(loc[i - 1], int):
            parent = loc[i - 2]
            if parent == "fields" and part in _FIELD_ITEM_TAGS:
                continue
            if parent == "recipients" and part in _RECIPIENT_KINDS:
                continue
        out.append(part)
    return tuple(out)


def _where(loc: Sequence[int | str], raw: object) -> str:
    """`purposes[1] (message).retention` from a location, naming list items from the input."""
    text = ""
    node: object = raw
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            label_key = {"purposes": "code", "fields": "name", "recipients": "kind"}.get(
                str(previous)
            )
            label = node.get(label_key) if label_key and isinstance(node, Mapping) else None
            if isinstance(label, str) and _CODE.fullmatch(label):
                text += f" ({label})"
        else:
            text += f".{part}" if text else part
            node = node.get(part) if isinstance(node, Mapping) else None
        previous = part
    return text


def _message(err: Mapping[str, Any]) -> str:
    kind: str = err["type"]
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    fixed = {
        "string_type": "must be text",
        "int_type": "must be an integer",
        "int_parsing": "must be an integer",
        "int_from_float": "must be an integer",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "dict_type": "must be a mapping (key: value)",
        "model_type": "must be a mapping (key: value)",
        "model_attributes_type": "must be a mapping (key: value)",
        "list_type": "must be a list",
        "tuple_type": "must be a list",
        "date_type": "must be a date (YYYY-MM-DD)",
        "date_parsing": "must be a date (YYYY-MM-DD)",
        "date_from_datetime_parsing": "must be a date (YYYY-MM-DD)",
        "date_from_datetime_inexact": "must be a date (YYYY-MM-DD), without a time",
        "string_too_short": "must not be empty",
    }
    if kind in fixed:
        return fixed[kind]
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in {"enum", "literal_error"}:
        return f"{err['input']!r} is not allowed; expected {ctx.get('expected')}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"must have at least {n} item{'s' if n != 1 else ''}"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<"}.get(kind, "<=")
        bound = next(iter(ctx.values()), "?")
        return f"must be {op} {bound}"
    if kind == "union_tag_invalid":
        return f"unknown kind {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return "'kind' is required (one of: " + ", ".join(sorted(_RECIPIENT_KINDS)) + ")"
    return str(err["msg"]).replace("Input should be", "must be")


def _translate(errors: Sequence[ErrorDetails], raw: Mapping[str, Any]) -> list[str]:
    """pydantic errors as `location: problem` lines, without pydantic's vocabulary."""
    problems: list[str] = []
    item_errors = {_clean_loc(e["loc"]) for e in errors}
    for err in errors:
        loc = _clean_loc(err["loc"])
        if err["type"] == "too_short" and any(
            bad[: len(loc)] == loc and len(bad) > len(loc) for bad in item_errors
        ):
            continue  # pydantic counts only valid items: the list's items are reported instead
        if err["type"] == "mandate_rules":
            where = _where(loc, raw)
            problems += [f"{where}: {p}" if where else p for p in err["ctx"]["problems"]]
            continue
        if err["type"] in {"missing", "extra_forbidden"} and loc:
            key = str(loc[-1])
            where = _where(loc[:-1], raw) or "mandate"
            if err["type"] == "missing":
                message = f"'{key}' is required" + _MISSING_HINTS.get(key, "")
            else:
                message = f"unknown key '{key}'"
                close = _suggestion(key, _node_at(loc[:-1], raw))
                if close:
                    message += f" (did you mean '{close}'?)"
            problems.append(f"{where}: {message}")
            continue
        problems.append(f"{_where(loc, raw) or 'mandate'}: {_message(err)}")
    return problems


def _partial_problems(raw: Mapping[str, Any]) -> list[str]:
    """Cross-document problems, read from raw input that did not validate as a whole."""
    raw_catalogue = raw.get("fields")
    catalogue: list[tuple[int, str, Field | None]] = []
    for i, item in enumerate(raw_catalogue if isinstance(raw_catalogue, list) else []):
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            try:
                field: Field | None = Field.model_validate(item)
            except ValidationError:
                field = None
            catalogue.append((i, item["name"], field))
    raw_purposes = raw.get("purposes")
    outlines: list[_Outline] = []
    complete = isinstance(raw_purposes, list)
    for i, item in enumerate(raw_purposes if isinstance(raw_purposes, list) else []):
        items = item.get("fields") if isinstance(item, Mapping) else None
        if not isinstance(item, Mapping) or not isinstance(item.get("code"), str):
            complete = False
            continue
        if not isinstance(items, list):
            complete = complete and items is None
            items = []
        refs = tuple(x for x in items if isinstance(x, str))
        basis = item.get("special_category_basis")
        outlines.append(_Outline(i, item["code"], basis is not None, refs))
    return _catalogue_problems(outlines, catalogue, purposes_complete=complete)


def _without_keys(raw: Any, paths: Sequence[tuple[int | str, ...]]) -> Any:
    """A copy of `raw` without the keys at `paths` (used to drop unknown keys)."""
    if not paths:
        return raw
    if isinstance(raw, Mapping):
        drop = {p[0] for p in paths if len(p) == 1}
        return {
            k: _without_keys(v, [p[1:] for p in paths if len(p) > 1 and p[0] == k])
            for k, v in raw.items()
            if k not in drop
        }
    if isinstance(raw, list):
        return [
            _without_keys(v, [p[1:] for p in paths if len(p) > 1 and p[0] == i])
            for i, v in enumerate(raw)
        ]
    return raw


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def parse_mandate(source: str | bytes | Mapping[str, Any]) -> Mandate:
    """A `Mandate` from YAML or JSON text, or a mapping; raises `MandateInvalid`."""
    raw = _load(source)
    try:
        return Mandate.model_validate(raw)
    except ValidationError as exc:
        problems = _translate(exc.errors(include_url=False), raw) + _partial_problems(raw)
        # An object's own rules run only once its keys are well-formed: check again without
        # the unknown keys (the commonest slip, a typo) to report those rules in the same pass.
        unknown = [_clean_loc(e["loc"]) for e in exc.errors() if e["type"] == "extra_forbidden"]
        if unknown:
            try:
                Mandate.model_validate(_without_keys(raw, unknown))
            except ValidationError as again:
                rules = [e for e in again.errors() if e["type"] == "mandate_rules"]
                problems += _translate(rules, raw)
        raise MandateInvalid(_unique(problems)) from None


def dump_mandate(mandate: Mandate, fmt: Literal["yaml", "json"] = "yaml") -> str:
    """The canonical text of a mandate: keys in schema order; `parse_mandate` reads it back."""
    data = mandate.model_dump(mode="json", by_alias=True)
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    raise ValueError(f"unknown format {fmt!r}: use 'yaml' or 'json'")


def diff_mandates(old: Mandate, new: Mandate) -> str:
    """A unified diff of the canonical YAML of two mandates ("" when they are the same)."""

    def label(m: Mandate) -> str:
        return f"{m.account} v{m.version}" if m.version is not None else f"{m.account} (draft)"

    return "".join(
        difflib.unified_diff(
            dump_mandate(old).splitlines(keepends=True),
            dump_mandate(new).splitlines(keepends=True),
            fromfile=label(old),
            tofile=label(new),
        )
    )
