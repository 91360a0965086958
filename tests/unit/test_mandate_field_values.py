"""Each field type's cleaning, value by value (mandates/forms.py), through `validate_fields`:
what is accepted, what it becomes, and what is refused with which fixed message."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from permanence.mandates import Field, FieldCategory, FieldType, SubmissionInvalid
from permanence.mandates.forms import validate_fields


def _field(kind: FieldType, **kw: Any) -> Field:
    return Field(name="f", type=kind, category=FieldCategory.ADMINISTRATIVE, **kw)


def clean(kind: FieldType, value: object, **kw: Any) -> object:
    return validate_fields([_field(kind, **kw)], {"f": value}, owner="test", code="t")["f"]


def refused(kind: FieldType, value: object, **kw: Any) -> str:
    with pytest.raises(SubmissionInvalid) as caught:
        validate_fields([_field(kind, **kw)], {"f": value}, owner="test", code="t")
    (error,) = caught.value.errors
    return f"{error.code}: {error.message}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), (1, True), (0, False), (" Oui ", True), ("NON", False),
     ("on", True), ("off", False), ("1", True), ("0", False), ("yes", True), ("false", False)],
)  # fmt: skip
def test_booleans(value: object, expected: bool) -> None:
    assert clean(FieldType.BOOL, value) is expected


@pytest.mark.parametrize("value", [-1, 2, "peut-être", "", 1.0, [], "vrai"])
def test_not_booleans(value: object) -> None:
    if value == "":
        return  # blank: not given (see test_mandate_forms.py)
    assert refused(FieldType.BOOL, value).startswith(
        "invalid: field 'f' of test: must be yes or no"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(42, 42), (-3, -3), (" 17 ", 17), ("+5", 5), ("-0", 0), ("9" * 18, int("9" * 18))],
)
def test_integers(value: object, expected: int) -> None:
    assert clean(FieldType.INTEGER, value) == expected


@pytest.mark.parametrize("value", [True, False, 1.5, "1.5", "9" * 19, "douze", "1 000", b"1"])
def test_not_integers(value: object) -> None:
    assert refused(FieldType.INTEGER, value) == "invalid: field 'f' of test: must be a whole number"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2027-01-04", "2027-01-04"), ("4/1/2027", "2027-01-04"), (" 04/01/2027 ", "2027-01-04"),
     (dt.date(2027, 1, 4), "2027-01-04")],
)  # fmt: skip
def test_dates(value: object, expected: str) -> None:
    assert clean(FieldType.DATE, value) == expected


@pytest.mark.parametrize(
    "value", ["2027-02-30", "30/02/2027", "2027-1-4", "04-01-2027", "demain", 20270104,
              dt.datetime(2027, 1, 4, 9, 0)],
)  # fmt: skip
def test_not_dates(value: object) -> None:
    message = refused(FieldType.DATE, value)
    assert message.startswith("invalid: field 'f' of test: must be a date")
    assert "2027" not in message  # the value is never echoed


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2027-01-04T09:30", "2027-01-04T09:30:00"),
        ("2027-01-04 09:30:00+01:00", "2027-01-04T09:30:00+01:00"),
        (dt.datetime(2027, 1, 4, 9, 30), "2027-01-04T09:30:00"),
    ],
)
def test_datetimes(value: object, expected: str) -> None:
    assert clean(FieldType.DATETIME, value) == expected


@pytest.mark.parametrize(
    "value", ["2027-02-30T09:30", "2027-01-04", "09:30", 1, dt.date(2027, 1, 4)]
)
def test_not_datetimes(value: object) -> None:
    message = refused(FieldType.DATETIME, value)
    assert message == "invalid: field 'f' of test: must be a date and time (YYYY-MM-DDTHH:MM)"


def test_each_text_kind_is_cleaned_its_own_way() -> None:
    assert clean(FieldType.TEXT, "  Martin  ") == "Martin"
    assert clean(FieldType.FREE_TEXT, "a\r\nb\rc") == "a\nb\nc"
    assert clean(FieldType.PHONE, "06 12 34 56 78") == "+33612345678"
    assert clean(FieldType.EMAIL, "Marie@Exemple.FR") == "Marie@exemple.fr"
    assert clean(FieldType.CHOICE, " urgent ", choices=("urgent", "normal")) == "urgent"
    for kind in (FieldType.TEXT, FieldType.PHONE, FieldType.EMAIL, FieldType.CHOICE):
        extra = {"choices": ("a",)} if kind is FieldType.CHOICE else {}
        for text in ("a\nb", "a\rb"):
            assert refused(kind, text, **extra).endswith("must be on one line")
    for kind in FieldType:
        if kind not in (FieldType.BOOL, FieldType.INTEGER):
            extra = {"choices": ("a",)} if kind is FieldType.CHOICE else {}
            assert "invalid" in refused(kind, 1.5, **extra)


def test_choices_must_be_declared_ones() -> None:
    assert refused(FieldType.CHOICE, "autre", choices=("urgent",)).endswith(
        "must be one of the declared choices"
    )
    # A mandate built without validation may carry a choice field with no choices: none fits.
    bare = Field.model_construct(
        name="f",
        type=FieldType.CHOICE,
        category=FieldCategory.ADMINISTRATIVE,
        choices=None,
        required=False,
        special_category=False,
        max_length=None,
    )
    with pytest.raises(SubmissionInvalid):
        validate_fields([bare], {"f": "urgent"}, owner="test", code="t")


def test_max_length_is_inclusive() -> None:
    assert clean(FieldType.TEXT, "abcde", max_length=5) == "abcde"
    assert refused(FieldType.TEXT, "abcdef", max_length=5) == (
        "too_long: field 'f' of test is longer than 5 characters"
    )


def _consent_mandate() -> Any:
    from permanence.mandates import parse_mandate

    purpose = {
        "code": "wellbeing",
        "label_fr": "Suivi",
        "legal_basis": "consent",
        "consent_wording": {"version": "c1", "text_fr": "Acceptez-vous ?"},
        "special_category_basis": "art9_2_a",
        "fields": [
            {"name": "symptoms", "type": "free_text", "category": "health"},
            {"name": "last_name", "type": "text", "category": "identity", "required": True},
        ],
        "retention": {"message": "P1M"},
    }
    return parse_mandate({
        "account": "bien-etre", "version": 1, "kind": "medical",
        "controller": {"name": "B", "address": "A", "contact_email": "b@b.example", "dpo": None,
                       "rights_contact": "b@b.example", "health_data": True},
        "notice": {"version": "1", "layer1_fr": "Bonjour."},
        "purposes": [purpose], "recipients": [{"kind": "portal"}],
    })  # fmt: skip


def test_consent_is_not_assumed_and_every_field_is_still_checked() -> None:
    purpose = _consent_mandate().purpose("wellbeing")
    with pytest.raises(SubmissionInvalid) as caught:
        validate_fields(
            purpose.resolved_fields, {"symptoms": "migraines"}, owner="p", code="w", purpose=purpose
        )  # explicit_consent not given: not assumed
    assert [(e.field, e.code) for e in caught.value.errors] == [
        ("symptoms", "consent_required"),
        ("last_name", "required"),  # the field after the refused one is checked too
    ]
