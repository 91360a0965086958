"""The operator's form derived from a mandate, and the server-side check of a submission."""

from datetime import date
from importlib.resources import files
from typing import Any

import pytest

from permanence.mandates import (
    Field,
    FieldCategory,
    FieldType,
    LegalBasis,
    Mandate,
    Purpose,
    PurposeNotInMandate,
    Retention,
    SpecialCategoryBasis,
    SubmissionInvalid,
    form_for,
    parse_mandate,
    validate_submission,
)


def demo(name: str) -> Mandate:
    text = (files("permanence.demo") / "mandates" / f"{name}.yaml").read_text(encoding="utf-8")
    return parse_mandate(text)


@pytest.fixture(scope="module")
def lefevre() -> Mandate:
    return demo("cabinet-lefevre")


@pytest.fixture(scope="module")
def durand() -> Mandate:
    return demo("plomberie-durand")


def errors_of(mandate: Mandate, purpose: str, values: dict[str, Any], **kw: Any) -> list[Any]:
    with pytest.raises(SubmissionInvalid) as caught:
        validate_submission(mandate, purpose, values, **kw)
    return caught.value.errors


def test_form_follows_the_purpose_in_declaration_order(lefevre: Mandate) -> None:
    form = form_for(lefevre, "appointment")
    assert [f.name for f in form] == [
        "last_name", "first_name", "phone", "date_of_birth", "new_patient", "preferred_slot",
    ]  # fmt: skip
    phone = form[2]
    assert (phone.label_fr, phone.label_en, phone.input_type, phone.required) == (
        "Téléphone", "Phone", "tel", True,
    )  # fmt: skip
    assert form[4].input_type == "yesno"
    assert not any(f.special_category for f in form)


def test_form_marks_special_category_fields_and_keeps_mandate_labels(lefevre: Mandate) -> None:
    note = form_for(lefevre, "message")[-1]
    assert (note.name, note.label_fr, note.input_type) == (
        "note",
        "Message pour le docteur",
        "textarea",
    )
    assert note.special_category and note.max_length == 500


def test_form_lists_choices(durand: Mandate) -> None:
    urgency = next(f for f in form_for(durand, "intervention") if f.name == "urgency")
    assert urgency.input_type == "select"
    assert urgency.choices[0] == "urgent (fuite, dégât des eaux)"


def test_unknown_purpose_is_refused(lefevre: Mandate) -> None:
    with pytest.raises(PurposeNotInMandate, match="purpose 'billing' is not declared"):
        form_for(lefevre, "billing")
    with pytest.raises(PurposeNotInMandate):
        validate_submission(lefevre, "billing", {})


def test_valid_submission_is_cleaned(lefevre: Mandate) -> None:
    cleaned = validate_submission(
        lefevre,
        "appointment",
        {
            "last_name": "  Martin ",
            "first_name": "Léa",
            "phone": "06 12 34 56 78",
            "date_of_birth": "03/02/1990",
            "new_patient": "on",
            "preferred_slot": "2025-03-04T09:30",
        },
    )
    assert cleaned == {
        "last_name": "Martin",
        "first_name": "Léa",
        "phone": "+33612345678",
        "date_of_birth": "1990-02-03",
        "new_patient": True,
        "preferred_slot": "2025-03-04T09:30:00",
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("oui", True), ("false", False), ("0", False), (False, False)],
)
def test_booleans_are_coerced(lefevre: Mandate, raw: object, expected: bool) -> None:
    values = {"last_name": "M", "first_name": "L", "phone": "+33612345678",
              "new_patient": raw, "preferred_slot": "2025-03-04 09:30"}  # fmt: skip
    assert validate_submission(lefevre, "appointment", values)["new_patient"] is expected


def test_email_domain_is_lower_cased_and_dates_accept_date_objects() -> None:
    mandate = demo("cabinet-moreau-avocats")
    cleaned = validate_submission(
        mandate,
        "appointment",
        {"last_name": "Roux", "phone": "+33612345678", "email": "Anne.Roux@Exemple.FR",
         "new_client": True, "preferred_slot": "2025-06-02T14:00+02:00"},
    )  # fmt: skip
    assert cleaned["email"] == "Anne.Roux@exemple.fr"
    assert cleaned["preferred_slot"] == "2025-06-02T14:00:00+02:00"
    assert "first_name" not in cleaned  # blank optional fields are left out


@pytest.mark.gdpr("Art. 5(1)(c)")
def test_field_outside_purpose_is_rejected(lefevre: Mandate) -> None:
    errors = errors_of(
        lefevre, "message", {"last_name": "M", "phone": "+33612345678", "note": "x",
                             "diagnosis": "grippe"},
    )  # fmt: skip
    assert [(e.field, e.code, e.message) for e in errors] == [
        ("diagnosis", "not_in_purpose", "field 'diagnosis' is not declared by purpose 'message'")
    ]


def test_field_name_that_looks_like_data_is_not_echoed(lefevre: Mandate) -> None:
    errors = errors_of(lefevre, "message", {"jean.dupont@exemple.fr": "x", "last_name": "M",
                                            "phone": "+33612345678", "note": "x"})  # fmt: skip
    assert errors[0].code == "not_in_purpose"
    assert "jean.dupont" not in errors[0].message and errors[0].field == ""


def test_missing_required_fields_are_each_named(lefevre: Mandate) -> None:
    errors = errors_of(lefevre, "message", {"last_name": "  ", "phone": None})
    assert [(e.field, e.code) for e in errors] == [
        ("last_name", "required"), ("phone", "required"), ("note", "required"),
    ]  # fmt: skip
    assert errors[0].message == "field 'last_name' is required by purpose 'message'"


def test_bad_values_are_invalid(lefevre: Mandate, durand: Mandate) -> None:
    errors = errors_of(
        lefevre,
        "appointment",
        {"last_name": "M", "first_name": "L", "phone": "12", "date_of_birth": "31/02/1990",
         "new_patient": "peut-être", "preferred_slot": "demain"},
    )  # fmt: skip
    assert [(e.field, e.code) for e in errors] == [
        ("phone", "invalid"), ("date_of_birth", "invalid"), ("new_patient", "invalid"),
        ("preferred_slot", "invalid"),
    ]  # fmt: skip
    errors = errors_of(
        durand, "intervention",
        {"last_name": "D", "phone": "+33612345678", "address": "1 rue X", "urgency": "hier",
         "description": "fuite", "email": "pas-une-adresse"},
    )  # fmt: skip
    assert [(e.field, e.code) for e in errors] == [("email", "invalid"), ("urgency", "invalid")]


def test_too_long_text_is_rejected(lefevre: Mandate) -> None:
    errors = errors_of(lefevre, "message", {"last_name": "M", "phone": "+33612345678",
                                            "note": "x" * 501})  # fmt: skip
    assert [(e.field, e.code) for e in errors] == [("note", "too_long")]
    assert "500 characters" in errors[0].message


def test_health_data_is_accepted_under_art9_2_h(lefevre: Mandate) -> None:
    cleaned = validate_submission(
        lefevre, "message", {"last_name": "M", "phone": "+33612345678", "note": "Fièvre\r\n39"}
    )
    assert cleaned["note"] == "Fièvre\n39"


def single_purpose_mandate(basis: SpecialCategoryBasis | None, validate: bool = True) -> Mandate:
    purpose = {
        "code": "wellbeing",
        "label_fr": "Suivi",
        "legal_basis": "consent",
        "consent_wording": {"version": "c1", "text_fr": "Acceptez-vous ?"},
        "special_category_basis": basis,
        "fields": [
            {"name": "last_name", "type": "text", "category": "identity", "required": True},
            {"name": "symptoms", "type": "free_text", "category": "health"},
        ],
        "retention": {"message": "P1M"},
    }
    doc = {
        "account": "bien-etre", "version": 1, "kind": "medical",
        "controller": {"name": "B", "address": "A", "contact_email": "b@b.example", "dpo": None,
                       "rights_contact": "b@b.example", "health_data": True},
        "notice": {"version": "1", "layer1_fr": "Bonjour."},
        "purposes": [purpose], "recipients": [{"kind": "portal"}],
    }  # fmt: skip
    return parse_mandate(doc)


@pytest.mark.gdpr("Art. 9(2)")
def test_explicit_consent_is_required_for_art9_2_a() -> None:
    mandate = single_purpose_mandate(SpecialCategoryBasis.ART9_2_A)
    values = {"last_name": "M", "symptoms": "migraines"}
    errors = errors_of(mandate, "wellbeing", values)
    assert [(e.field, e.code) for e in errors] == [("symptoms", "consent_required")]
    assert "Art. 9(2)(a)" in errors[0].message
    cleaned = validate_submission(mandate, "wellbeing", values, explicit_consent=True)
    assert cleaned["symptoms"] == "migraines"
    # without the special-category value there is nothing to consent to
    assert validate_submission(mandate, "wellbeing", {"last_name": "M"}) == {"last_name": "M"}


@pytest.mark.gdpr("Art. 9(2)")
def test_health_data_without_art9_basis_is_rejected_even_if_the_mandate_skipped_validation() -> (
    None
):
    # A mandate built with model_construct bypasses the schema's rules; the form check is the
    # last line of defence and must still refuse health data without an Art. 9 basis.
    purpose = Purpose.model_construct(
        code="message",
        label_fr="Message",
        legal_basis=LegalBasis.CONTRACT,
        special_category_basis=None,
        fields=(
            Field(name="note", type=FieldType.FREE_TEXT, category=FieldCategory.HEALTH),
        ),
        retention=Retention.model_construct(),
    )  # fmt: skip
    mandate = Mandate.model_construct(account="x", purposes=(purpose,))
    errors = errors_of(mandate, "message", {"note": "diabète"})
    assert [(e.field, e.code) for e in errors] == [("note", "no_art9_basis")]


def test_messages_never_contain_submitted_values(lefevre: Mandate, durand: Mandate) -> None:
    secrets = {
        "last_name": "Zorglub-Secret",
        "phone": "0999SECRET",
        "note": "SECRET-DIAGNOSIS " * 100,
        "diagnosis": "SECRET-EXTRA",
    }
    errors = errors_of(lefevre, "message", secrets)
    assert {e.code for e in errors} == {"not_in_purpose", "invalid", "too_long"}
    bad_durand = {"last_name": "Durand", "phone": "+33612345678", "address": "SECRET-ADDR",
                  "urgency": "SECRET-CHOICE", "description": "ok",
                  "email": "SECRET@@x"}  # fmt: skip
    errors += errors_of(durand, "intervention", bad_durand)
    text = " ".join(e.message for e in errors) + str(SubmissionInvalid("message", errors))
    for value in [*secrets.values(), *bad_durand.values()]:
        if value not in {"Durand", "+33612345678", "ok"}:
            assert value.strip()[:12] not in text


def test_dates_are_iso_strings_from_date_objects(lefevre: Mandate) -> None:
    cleaned = validate_submission(
        lefevre,
        "appointment",
        {"last_name": "M", "first_name": "L", "phone": "+33612345678",
         "date_of_birth": date(1990, 2, 3), "new_patient": False,
         "preferred_slot": "2025-03-04T09:30"},
    )  # fmt: skip
    assert cleaned["date_of_birth"] == "1990-02-03"
