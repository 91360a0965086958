"""The operator's form for a purpose, derived from the mandate, and its server-side check.

Minimisation (Art. 5(1)(c)) is enforced here: a value for a field the purpose does not declare
is rejected, never stored. Error messages name fields and purposes only, never the submitted
values: those may be personal data, and messages end up in logs and on screens.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from permanence.mandates.base import (
    FieldType,
    SpecialCategoryBasis,
    normalise_email,
    normalise_phone,
)
from permanence.mandates.mandate import Mandate
from permanence.mandates.purposes import Field, Purpose

__all__ = [
    "FieldError",
    "FormField",
    "SubmissionInvalid",
    "form_for",
    "validate_fields",
    "validate_submission",
]

# The HTML input each field type is rendered with. Booleans are a yes/no pair of radio buttons,
# not a checkbox, so that "not answered" and "no" stay different.
INPUT_TYPES: Mapping[FieldType, str] = {
    FieldType.TEXT: "text",
    FieldType.PHONE: "tel",
    FieldType.EMAIL: "email",
    FieldType.DATE: "date",
    FieldType.DATETIME: "datetime-local",
    FieldType.BOOL: "yesno",
    FieldType.INTEGER: "number",
    FieldType.CHOICE: "select",
    FieldType.FREE_TEXT: "textarea",
}

_TRUE = frozenset({"true", "on", "1", "yes", "oui"})
_FALSE = frozenset({"false", "off", "0", "no", "non"})
_SAFE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_FRENCH_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


@dataclass(frozen=True, slots=True)
class FormField:
    """One input of the operator's form, in the order the mandate declares it."""

    name: str
    label_fr: str
    label_en: str
    input_type: str
    type: FieldType
    required: bool
    max_length: int | None
    choices: tuple[str, ...]
    special_category: bool


@dataclass(frozen=True, slots=True)
class FieldError:
    """A problem with one submitted field; `message` never contains the submitted value."""

    field: str
    code: str  # not_in_purpose | required | invalid | too_long | no_art9_basis | consent_required
    message: str


class SubmissionInvalid(ValueError):
    """What an operator submitted for a purpose cannot be stored; `.errors` says why."""

    def __init__(self, purpose_code: str, errors: list[FieldError]) -> None:
        self.purpose_code = purpose_code
        self.errors = errors
        super().__init__(purpose_code, errors)

    def __str__(self) -> str:
        return "; ".join(e.message for e in self.errors)


def form_for(mandate: Mandate, purpose_code: str) -> list[FormField]:
    """The fields the operator fills in for `purpose_code`; raises `PurposeNotInMandate`."""
    return [_form_field(f) for f in mandate.purpose(purpose_code).resolved_fields]


def _form_field(field: Field) -> FormField:
    return FormField(
        name=field.name,
        label_fr=field.display_label_fr,
        label_en=field.display_label_en,
        input_type=INPUT_TYPES[field.type],
        type=field.type,
        required=field.required,
        max_length=field.max_length,
        choices=field.choices or (),
        special_category=field.special_category,
    )


def validate_submission(
    mandate: Mandate,
    purpose_code: str,
    values: Mapping[str, object],
    *,
    explicit_consent: bool = False,
) -> dict[str, object]:
    """Cleaned values for `purpose_code`, or `SubmissionInvalid` listing every problem.

    Blank values (None, "", whitespace) count as not given and are left out of the result.
    Cleaning: text is stripped; phone → E.164 (region FR); e-mail → lower-cased domain;
    date → "YYYY-MM-DD" (ISO or DD/MM/YYYY); datetime → ISO 8601; bool from true/false,
    on/off, 1/0, oui/non; integer; choice must be one of the declared choices.
    `explicit_consent` says the caller gave the Art. 9(2)(a) consent the purpose relies on.
    Raises `PurposeNotInMandate` for an unknown purpose.
    """
    purpose = mandate.purpose(purpose_code)
    return validate_fields(
        purpose.resolved_fields,
        values,
        owner=f"purpose '{purpose.code}'",
        code=purpose.code,
        purpose=purpose,
        explicit_consent=explicit_consent,
    )


def validate_fields(
    declared: Sequence[Field],
    values: Mapping[str, object],
    *,
    owner: str,
    code: str,
    purpose: Purpose | None = None,
    explicit_consent: bool = False,
) -> dict[str, object]:
    """The check behind `validate_submission`, for any set of declared fields.

    `owner` names what declares the fields in the messages ("purpose 'x'", "the caller's
    identity"); `code` is what `SubmissionInvalid.purpose_code` carries. A rights request
    rectifying the caller's identity is checked with it against the identity's own fields,
    a record's fields with `validate_submission` against the record's purpose.
    """
    fields = {f.name: f for f in declared}
    errors: list[FieldError] = []
    cleaned: dict[str, object] = {}

    for key in values:
        if key not in fields:
            shown = (
                f"'{key}'" if isinstance(key, str) and _SAFE_NAME.fullmatch(key) else "(unnamed)"
            )
            errors.append(
                FieldError(
                    str(key) if shown != "(unnamed)" else "",
                    "not_in_purpose",
                    f"field {shown} is not declared by {owner}",
                )
            )

    for name, field in fields.items():
        raw = values.get(name)
        if _is_blank(raw):
            if field.required:
                message = f"field '{name}' is required by {owner}"
                errors.append(FieldError(name, "required", message))
            continue
        if purpose is not None:
            art9 = _special_category_error(purpose, field, explicit_consent=explicit_consent)
            if art9 is not None:
                errors.append(art9)
                continue
        try:
            cleaned[name] = _clean(field, raw)
        except _TooLong:
            errors.append(
                FieldError(
                    name,
                    "too_long",
                    f"field '{name}' of {owner} is longer than {field.max_length} characters",
                )
            )
        except ValueError as exc:
            errors.append(FieldError(name, "invalid", f"field '{name}' of {owner}: {exc}"))

    if errors:
        raise SubmissionInvalid(code, errors)
    return cleaned


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _special_category_error(
    purpose: Purpose, field: Field, *, explicit_consent: bool
) -> FieldError | None:
    if not field.special_category:
        return None
    if purpose.special_category_basis is None:
        # A validated mandate never gets here; this guards mandates built without validation.
        return FieldError(
            field.name,
            "no_art9_basis",
            f"field '{field.name}' is special-category data but purpose '{purpose.code}' has no "
            "Art. 9 basis",
        )
    if purpose.special_category_basis is SpecialCategoryBasis.ART9_2_A and not explicit_consent:
        return FieldError(
            field.name,
            "consent_required",
            f"field '{field.name}' is special-category data: purpose '{purpose.code}' relies on "
            "the caller's explicit consent (Art. 9(2)(a)), which has not been given",
        )
    return None


class _TooLong(ValueError):
    pass


# The messages below describe the expected form only, never the value received.
def _clean(field: Field, value: object) -> object:
    kind = field.type
    if kind is FieldType.BOOL:
        return _to_bool(value)
    if kind is FieldType.INTEGER:
        return _to_int(value)
    if kind is FieldType.DATE:
        return _to_date(value)
    if kind is FieldType.DATETIME:
        return _to_datetime(value)
    if not isinstance(value, str):
        raise ValueError("must be text")
    text = value.strip()
    if kind is FieldType.FREE_TEXT:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    elif "\n" in text or "\r" in text:
        raise ValueError("must be on one line")
    if kind is FieldType.PHONE:
        return normalise_phone(text)
    if kind is FieldType.EMAIL:
        text = normalise_email(text)
    if kind is FieldType.CHOICE:
        if text not in (field.choices or ()):
            raise ValueError("must be one of the declared choices")
        return text
    if field.max_length is not None and len(text) > field.max_length:
        raise _TooLong
    return text


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError("must be yes or no (true/false, on/off, 1/0, oui/non)")


def _to_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d{1,18}", value.strip()):
        return int(value.strip())
    raise ValueError("must be a whole number")


def _to_date(value: object) -> str:
    if isinstance(value, datetime):
        raise ValueError("must be a date without a time")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()
        french = _FRENCH_DATE.fullmatch(text)
        try:
            if french:
                day, month, year = (int(g) for g in french.groups())
                return date(year, month, day).isoformat()
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
    raise ValueError("must be a date (YYYY-MM-DD or DD/MM/YYYY)")


def _to_datetime(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and re.fullmatch(
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*", value.strip()
    ):
        try:
            return datetime.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise ValueError("must be a date and time (YYYY-MM-DDTHH:MM)")
