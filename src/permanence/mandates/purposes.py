"""A mandate's purposes of processing (Art. 5(1)(b), 6, 9): the fields each may collect,
their retention periods and the consent wording; each model checks its own rules.
"""

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Self

import pydantic
from pydantic import (
    Discriminator,
    PrivateAttr,
    Tag,
    model_validator,
)

from permanence.mandates.base import (
    _NIR_NAME,
    TEXTUAL_TYPES,
    Code,
    FieldCategory,
    FieldName,
    FieldType,
    LegalBasis,
    RetentionKind,
    SpecialCategoryBasis,
    Text,
    _Model,
    _over_maximum,
)
from permanence.mandates.durations import IsoDuration
from permanence.mandates.errors import FieldNotInPurpose, _reject

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
        if self.needs_consent and self.consent_wording is None:
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
    def needs_consent(self) -> bool:
        """Whether the purpose relies on the caller's consent (Art. 6(1)(a) or 9(2)(a))."""
        return (
            self.legal_basis is LegalBasis.CONSENT
            or self.special_category_basis is SpecialCategoryBasis.ART9_2_A
        )

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
