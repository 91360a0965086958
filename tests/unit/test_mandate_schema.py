"""Mandate schema: parsing, every validation rule's message, round trips, diffs, durations."""

import copy
import json
from datetime import date, datetime
from importlib.resources import files
from typing import Any

import pytest

from permanence.mandates import (
    FieldNotInPurpose,
    IsoDuration,
    Mandate,
    MandateInvalid,
    MandateUnversioned,
    PurposeNotInMandate,
    RetentionKind,
    diff_mandates,
    dump_mandate,
    parse_duration,
    parse_mandate,
)

DEMOS = ("cabinet-lefevre", "cabinet-moreau-avocats", "plomberie-durand")


def demo_text(name: str) -> str:
    return (files("permanence.demo") / "mandates" / f"{name}.yaml").read_text(encoding="utf-8")


def mandate_doc(**overrides: Any) -> dict[str, Any]:
    """A small valid mandate as a dict; tests break one thing at a time."""
    doc: dict[str, Any] = {
        "account": "cabinet-test",
        "version": 2,
        "kind": "medical",
        "controller": {
            "name": "Cabinet Test",
            "address": "1 rue de la Paix, 75002 Paris",
            "contact_email": "contact@cabinet-test.example",
            "dpo": None,
            "rights_contact": "contact@cabinet-test.example",
            "health_data": True,
        },
        "dids": ["+33140000001"],
        "notice": {"version": "v1", "layer1_fr": "Cabinet Test, bonjour."},
        "fields": [
            {"name": "last_name", "type": "text", "category": "identity", "required": True},
            {"name": "phone", "type": "phone", "category": "contact", "required": True},
        ],
        "purposes": [
            {
                "code": "appointment",
                "label_fr": "Prise de rendez-vous",
                "legal_basis": "contract",
                "fields": ["last_name", "phone"],
                "retention": {"appointment": "P1Y"},
            },
            {
                "code": "message",
                "label_fr": "Message",
                "legal_basis": "legitimate_interest",
                "legitimate_interest": "transmettre les messages",
                "special_category_basis": "art9_2_h",
                "fields": [
                    "last_name",
                    "phone",
                    {"name": "note", "type": "free_text", "category": "health", "max_length": 500},
                ],
                "retention": {"message": "P3M"},
            },
        ],
        "recipients": [{"kind": "portal"}],
    }
    doc.update(overrides)
    return doc


def problems_of(doc: Any) -> list[str]:
    with pytest.raises(MandateInvalid) as caught:
        parse_mandate(doc)
    return caught.value.problems


def assert_problem(doc: Any, expected: str) -> None:
    problems = problems_of(doc)
    assert expected in problems, "\n".join(problems)


# -- the demo mandates ---------------------------------------------------------------------


@pytest.mark.parametrize("name", DEMOS)
def test_demo_mandates_parse_and_round_trip(name: str) -> None:
    mandate = parse_mandate(demo_text(name))
    assert mandate.account == name
    assert parse_mandate(dump_mandate(mandate)) == mandate
    assert parse_mandate(dump_mandate(mandate, "json")) == mandate
    assert dump_mandate(parse_mandate(dump_mandate(mandate))) == dump_mandate(mandate)


def test_medical_demo_keeps_health_note_under_art9_2_h() -> None:
    mandate = parse_mandate(demo_text("cabinet-lefevre"))
    note = mandate.purpose("message").field("note")
    assert note.special_category and note.category == "health"
    assert mandate.purpose("message").special_category_basis == "art9_2_h"
    assert mandate.declares_health_data
    assert not mandate.purpose("appointment").has_special_category


def test_plumber_demo_records_a_sample_of_calls_and_has_no_health_data() -> None:
    mandate = parse_mandate(demo_text("plomberie-durand"))
    assert mandate.recording.enabled and mandate.recording.sample_rate == 0.2
    assert mandate.purpose("intervention").field("description").category == "free_text"
    assert not mandate.declares_health_data
    assert "9" in (mandate.notice.recording_fr or "")


def test_law_firm_demo_has_three_purposes_and_no_health_data() -> None:
    mandate = parse_mandate(demo_text("cabinet-moreau-avocats"))
    assert [p.code for p in mandate.purposes] == ["message", "appointment", "callback"]
    assert {p.legal_basis for p in mandate.purposes} == {"legitimate_interest", "contract"}
    assert not mandate.declares_health_data


# -- parsing inputs ------------------------------------------------------------------------


def test_json_text_and_bytes_parse_like_a_mapping() -> None:
    doc = mandate_doc()
    assert parse_mandate(json.dumps(doc)) == parse_mandate(doc)
    assert parse_mandate(json.dumps(doc).encode()) == parse_mandate(doc)


def test_unquoted_yaml_times_and_country_codes_stay_text() -> None:
    # YAML 1.1 reads 18:00 as the number 1080 and NO as false; the mandate loader does not.
    text = dump_mandate(parse_mandate(mandate_doc())).replace("transfers: []\n", "") + (
        "on_call:\n  escalation_after: PT30M\n  contacts:\n"
        "  - {name: Dr Test, phone: '+33600000001', from: 18:00, to: 08:00}\n"
        "transfers:\n  - {country: NO, safeguard: adequacy_decision}\n"
    )
    mandate = parse_mandate(text)
    assert mandate.on_call is not None and mandate.on_call.contacts[0].from_ == "18:00"
    assert mandate.transfers[0].country == "NO"


def test_yaml_duplicate_key_and_syntax_errors_are_problems() -> None:
    [problem] = problems_of("account: a\naccount: b\n")
    assert "duplicate key 'account'" in problem and "line 2" in problem
    [problem] = problems_of("account: [unclosed\n")
    assert problem.startswith("YAML syntax error")
    assert problems_of("- a list\n") == [
        "the document must be a mapping (key: value) at the top level"
    ]


# -- each validation rule ------------------------------------------------------------------


@pytest.mark.gdpr("Art. 6(1)")
def test_missing_legal_basis_is_named() -> None:
    doc = mandate_doc()
    del doc["purposes"][0]["legal_basis"]
    assert_problem(
        doc,
        "purposes[0] (appointment): 'legal_basis' is required (the Art. 6(1) basis: consent, "
        "contract, legal_obligation, vital_interests, public_task, legitimate_interest)",
    )


@pytest.mark.gdpr("Art. 6(1)")
def test_unknown_legal_basis_is_rejected() -> None:
    doc = mandate_doc()
    doc["purposes"][0]["legal_basis"] = "because"
    [problem] = problems_of(doc)
    assert problem.startswith("purposes[0] (appointment).legal_basis: 'because' is not allowed")


def test_legitimate_interest_needs_its_text() -> None:
    doc = mandate_doc()
    del doc["purposes"][1]["legitimate_interest"]
    assert_problem(
        doc,
        "purposes[1] (message): legal_basis is legitimate_interest but 'legitimate_interest' "
        "(the interest pursued, Art. 6(1)(f) and 13(1)(d)) is missing",
    )


def test_health_field_without_art9_basis_is_rejected() -> None:
    doc = mandate_doc()
    doc["purposes"][1]["special_category_basis"] = None
    assert problems_of(doc) == [
        "purposes[1] (message): field 'note' is special-category data (health) but the "
        "purpose has no Art. 9 basis (special_category_basis)"
    ]


def test_special_category_catalogue_field_needs_art9_basis_in_the_referencing_purpose() -> None:
    doc = mandate_doc()
    doc["fields"].append({"name": "symptoms", "type": "free_text", "category": "health"})
    doc["purposes"][0]["fields"].append("symptoms")
    assert_problem(
        doc,
        "purposes[0] (appointment): field 'symptoms' is special-category data (health) but the "
        "purpose has no Art. 9 basis (special_category_basis)",
    )


def test_health_field_cannot_be_declared_not_special() -> None:
    doc = mandate_doc()
    doc["purposes"][1]["fields"][2]["special_category"] = False
    assert_problem(
        doc,
        "purposes[1] (message).fields[2] (note): field 'note': health data is always "
        "special-category data (Art. 9); special_category cannot be false",
    )


def test_unused_catalogue_field_is_reported() -> None:
    doc = mandate_doc()
    doc["fields"].append({"name": "email", "type": "email", "category": "contact"})
    assert problems_of(doc) == [
        "fields[2] (email): field 'email' is declared but no purpose collects it "
        "(minimisation, Art. 5(1)(c))"
    ]


def test_reference_to_unknown_field_is_reported() -> None:
    doc = mandate_doc()
    doc["purposes"][0]["fields"].append("diagnosis")
    assert problems_of(doc) == [
        "purposes[0] (appointment): field 'diagnosis' is not declared: it is neither inline nor "
        "in the top-level 'fields' catalogue"
    ]


def test_duplicate_purpose_codes_and_field_names_are_reported() -> None:
    doc = mandate_doc()
    doc["purposes"].append(copy.deepcopy(doc["purposes"][0]))
    doc["purposes"][1]["fields"].append({"name": "phone", "type": "phone", "category": "contact"})
    problems = problems_of(doc)
    assert (
        "purposes[2] (appointment): duplicate purpose code 'appointment' (also purposes[0])"
        in problems
    )
    assert "purposes[1] (message): field 'phone' is declared twice" in problems


def test_duplicate_catalogue_field_is_reported() -> None:
    doc = mandate_doc()
    doc["fields"].append(dict(doc["fields"][0]))
    assert_problem(doc, "fields[2] (last_name): field 'last_name' is declared twice")


@pytest.mark.parametrize(
    ("kind", "value", "limit"),
    [("recording", "P7M", "P6M"), ("evaluation", "P13M", "P12M"), ("call_log", "P366D", "P1Y")],
)
def test_retention_above_legal_maximum_is_rejected(kind: str, value: str, limit: str) -> None:
    doc = mandate_doc()
    doc["purposes"][0]["retention"][kind] = value
    [problem] = problems_of(doc)
    assert problem.startswith(
        f"purposes[0] (appointment).retention: {kind} retention {value} exceeds the legal "
        f"maximum {limit}"
    )


def test_retention_at_the_legal_maximum_is_accepted() -> None:
    doc = mandate_doc()
    doc["purposes"][0]["retention"].update(recording="P6M", evaluation="P1Y", call_log="P12M")
    assert parse_mandate(doc).retention("recording", "appointment") == IsoDuration(months=6)


def test_purpose_without_retention_is_rejected() -> None:
    doc = mandate_doc()
    doc["purposes"][0]["retention"] = {}
    [problem] = problems_of(doc)
    assert problem.startswith("purposes[0] (appointment).retention: declares no retention period")


def test_unknown_retention_kind_is_an_unknown_key() -> None:
    doc = mandate_doc()
    doc["purposes"][0]["retention"]["forever"] = "P1Y"
    assert problems_of(doc) == ["purposes[0] (appointment).retention: unknown key 'forever'"]


def recording_doc(**recording: Any) -> dict[str, Any]:
    doc = mandate_doc(kind="trades")
    doc["controller"]["health_data"] = False
    doc["purposes"] = doc["purposes"][:1]
    doc["notice"]["recording_fr"] = "Cet appel peut être enregistré ; appuyez sur 9 pour refuser."
    doc["recording"] = {"purpose_fr": "qualité", "retention": "P6M", **recording}
    return doc


def test_sampled_recording_is_accepted() -> None:
    mandate = parse_mandate(recording_doc(enabled=True, mode="sampling", sample_rate=0.2))
    assert mandate.retention(RetentionKind.RECORDING) == IsoDuration(months=6)


def test_recording_every_call_is_forbidden() -> None:
    assert problems_of(recording_doc(enabled=True, mode="sampling", sample_rate=1.0)) == [
        "recording: sample_rate 1.0 records every call: permanent recording of calls is "
        "forbidden (CNIL)"
    ]


def test_recording_without_mode_is_permanent_and_forbidden() -> None:
    [problem] = problems_of(recording_doc(enabled=True))
    assert problem.startswith(
        "recording: recording is enabled without a mode: permanent recording of calls is "
        "forbidden (CNIL)"
    )


def test_recording_periods_need_a_period_and_an_order() -> None:
    assert problems_of(recording_doc(enabled=True, mode="periods")) == [
        "recording: mode periods needs at least one period {start, end}"
    ]
    doc = recording_doc(
        enabled=True, mode="periods", periods=[{"start": "2025-03-10", "end": "2025-03-01"}]
    )
    assert problems_of(doc) == ["recording.periods[0]: the period ends before it starts"]


def test_recording_needs_a_notice_that_says_how_to_object() -> None:
    doc = recording_doc(enabled=True, mode="sampling", sample_rate=0.1, objection_key="#")
    assert problems_of(doc) == [
        "notice.recording_fr does not tell callers to press # (recording.objection_key) to object"
    ]


def test_recording_a_health_line_is_rejected() -> None:
    doc = recording_doc(enabled=True, mode="sampling", sample_rate=0.1)
    doc["controller"]["health_data"] = True
    [problem] = problems_of(doc)
    assert problem.startswith("recording: calls to a mandate with health data")


def test_recording_retention_above_six_months_is_rejected() -> None:
    [problem] = problems_of(recording_doc(retention="P1Y"))
    assert problem.startswith("recording: retention P1Y exceeds the legal maximum P6M")


def test_bad_phone_numbers_are_named() -> None:
    doc = mandate_doc(dids=["+33140000001", "+331"])
    assert problems_of(doc) == [
        "dids[1]: not a valid phone number (give it in E.164, e.g. +33478000001, or as a "
        "French number)"
    ]


def test_national_numbers_are_normalised_to_e164() -> None:
    assert parse_mandate(mandate_doc(dids=["01 40 00 00 01"])).dids == ("+33140000001",)


def test_unknown_keys_are_errors_everywhere() -> None:
    doc = mandate_doc(colour="blue")
    doc["purposes"][0]["fields"] = [
        "last_name",
        {"name": "x", "type": "text", "category": "other", "secret": True},
    ]
    doc["recipients"] = [{"kind": "portal", "url": "https://x.example"}]
    problems = problems_of(doc)
    assert "mandate: unknown key 'colour'" in problems
    assert "purposes[0] (appointment).fields[1] (x): unknown key 'secret'" in problems
    assert "recipients[0] (portal): unknown key 'url'" in problems


def test_misspelt_key_suggests_the_right_one() -> None:
    doc = mandate_doc()
    doc["purposes"][0]["legal_bases"] = doc["purposes"][0].pop("legal_basis")
    assert (
        "purposes[0] (appointment): unknown key 'legal_bases' (did you mean 'legal_basis'?)"
        in problems_of(doc)
    )


def test_consent_basis_needs_a_consent_wording() -> None:
    doc = mandate_doc()
    doc["purposes"][0]["legal_basis"] = "consent"
    [problem] = problems_of(doc)
    assert problem.startswith("purposes[0] (appointment): the purpose relies on consent")
    doc["purposes"][0]["consent_wording"] = {"version": "c1", "text_fr": "Acceptez-vous ?"}
    assert parse_mandate(doc).purpose("appointment").consent_wording is not None


def test_email_notifications_never_carry_personal_data() -> None:
    doc = mandate_doc(
        recipients=[{"kind": "email_notification", "to": "a@b.example", "personal_data": True}]
    )
    [problem] = problems_of(doc)
    assert problem.startswith("recipients[0] (email_notification): personal_data must be false")


def test_webhook_must_be_https_and_reference_its_secret() -> None:
    doc = mandate_doc(
        recipients=[{"kind": "webhook", "url": "http://x.example/h", "secret_ref": "hunter2"}]
    )
    problems = problems_of(doc)
    assert "recipients[0] (webhook).url: must be an https:// URL" in problems
    assert any(
        p.startswith("recipients[0] (webhook).secret_ref: must name where") for p in problems
    )


def test_health_data_needs_the_controller_flag_and_a_medical_kind_for_art9_2_h() -> None:
    doc = mandate_doc(kind="sme")
    doc["controller"]["health_data"] = False
    problems = problems_of(doc)
    assert any(
        p.startswith("controller.health_data is false but purposes[1] (message)") for p in problems
    )
    assert any("art9_2_h" in p and "requires kind: medical" in p for p in problems)


def test_choice_fields_need_choices() -> None:
    doc = mandate_doc()
    doc["purposes"][0]["fields"].append({"name": "urgency", "type": "choice", "category": "other"})
    assert_problem(
        doc,
        "purposes[0] (appointment).fields[2] (urgency): field 'urgency': a choice field needs a "
        "non-empty 'choices' list",
    )


def test_nir_field_is_refused() -> None:
    doc = mandate_doc()
    doc["purposes"][0]["fields"].append({"name": "nir", "type": "text", "category": "identity"})
    [problem] = problems_of(doc)
    assert "social security number (NIR)" in problem


def test_every_problem_is_reported_in_one_pass() -> None:
    doc = mandate_doc(dids=["+331"])
    del doc["purposes"][0]["legal_basis"]
    doc["purposes"][1]["special_category_basis"] = None
    doc["purposes"][1]["typo"] = 1
    doc["purposes"][1]["fields"].append("ghost")
    doc["fields"].append({"name": "unused", "type": "text", "category": "other"})
    problems = problems_of(doc)
    expected_starts = [
        "dids[0]: not a valid phone number",
        "purposes[0] (appointment): 'legal_basis' is required",
        "purposes[1] (message): unknown key 'typo'",
        "purposes[1] (message): field 'ghost' is not declared",
        "fields[2] (unused): field 'unused' is declared but no purpose collects it",
        "purposes[1] (message): field 'note' is special-category data (health)",
    ]
    for start in expected_starts:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert len(problems) == len(expected_starts), problems
    text = str(MandateInvalid(problems))
    assert text.startswith("the mandate has 6 problems:\n- ")


def test_messages_carry_no_pydantic_vocabulary() -> None:
    doc = mandate_doc(version=0, kind=3)
    doc["purposes"][0]["fields"] = [42]
    for problem in problems_of(doc):
        assert (
            "Input should" not in problem and "type=" not in problem and "pydantic" not in problem
        )
        assert "inline-field" not in problem


# -- helpers -------------------------------------------------------------------------------


def test_purpose_lookup_and_resolved_fields() -> None:
    mandate = parse_mandate(mandate_doc())
    message = mandate.purpose("message")
    assert [f.name for f in message.resolved_fields] == ["last_name", "phone", "note"]
    assert message.field("phone").type == "phone"
    assert message.has_special_category
    with pytest.raises(PurposeNotInMandate, match="purpose 'billing' is not declared"):
        mandate.purpose("billing")
    with pytest.raises(FieldNotInPurpose, match="field 'email' is not declared by purpose"):
        message.field("email")


def test_retention_lookup_by_purpose_and_by_kind() -> None:
    doc = mandate_doc()
    doc["purposes"][0]["retention"]["call_log"] = "P1Y"
    doc["purposes"][1]["retention"]["call_log"] = "P6M"
    mandate = parse_mandate(doc)
    assert mandate.retention("message", "message") == IsoDuration(months=3)
    assert mandate.retention("message", "appointment") is None
    assert mandate.retention("call_log") == IsoDuration(months=6)  # the shortest declared
    assert mandate.retention("evaluation") is None


def test_notice_version_combines_mandate_and_notice_versions() -> None:
    assert parse_mandate(mandate_doc()).notice_version == "2:v1"
    with pytest.raises(MandateUnversioned):
        _ = parse_mandate(mandate_doc(version=None)).notice_version


def test_field_labels_are_derived_when_missing() -> None:
    field = parse_mandate(mandate_doc()).purpose("message").field("last_name")
    assert (field.display_label_fr, field.display_label_en) == ("Nom", "Last name")
    doc = mandate_doc()
    doc["purposes"][0]["fields"].append(
        {"name": "boiler_model", "type": "text", "category": "other"}
    )
    odd = parse_mandate(doc).purpose("appointment").field("boiler_model")
    assert odd.display_label_fr == "Boiler model"


def test_mandates_are_immutable() -> None:
    mandate = parse_mandate(mandate_doc())
    with pytest.raises(ValueError, match="frozen"):
        mandate.account = "other"  # type: ignore[misc]


# -- dump and diff -------------------------------------------------------------------------


def test_dump_is_canonical_and_omits_absent_optionals_but_keeps_dpo_null() -> None:
    text = dump_mandate(parse_mandate(mandate_doc()))
    assert text.startswith("account: cabinet-test\nversion: 2\nkind: medical\n")
    assert "dpo: null" in text
    assert "label_en" not in text and "layer2_url" not in text


def test_diff_shows_a_changed_purpose() -> None:
    old = parse_mandate(mandate_doc())
    changed = mandate_doc(version=3)
    changed["purposes"][1]["retention"]["message"] = "P1M"
    new = parse_mandate(changed)
    diff = diff_mandates(old, new)
    assert diff.startswith("--- cabinet-test v2\n+++ cabinet-test v3\n")
    assert "-    message: P3M\n" in diff and "+    message: P1M\n" in diff
    assert diff_mandates(old, old) == ""


def test_model_validate_applies_the_same_rules() -> None:
    doc = mandate_doc()
    doc["purposes"][1]["special_category_basis"] = None
    with pytest.raises(ValueError, match=r"no Art\. 9 basis"):
        Mandate.model_validate(doc)


# -- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "duration", "end"),
    [
        (datetime(2025, 1, 31, 9), "P1M", datetime(2025, 2, 28, 9)),
        (datetime(2024, 1, 31, 9), "P1M", datetime(2024, 2, 29, 9)),
        (datetime(2024, 2, 29), "P1Y", datetime(2025, 2, 28)),
        (datetime(2025, 8, 31), "P6M", datetime(2026, 2, 28)),
        (datetime(2025, 12, 31, 23, 45), "PT30M", datetime(2026, 1, 1, 0, 15)),
        (datetime(2025, 3, 31), "P1M1D", datetime(2025, 5, 1)),
        (datetime(2025, 12, 15), "P1Y2M3DT4H5M6S", datetime(2027, 2, 18, 4, 5, 6)),
        (datetime(2025, 1, 1), "P2W", datetime(2025, 1, 15)),
    ],
)
def test_duration_is_calendar_aware(start: datetime, duration: str, end: datetime) -> None:
    assert parse_duration(duration).add_to(start) == end
    assert start + parse_duration(duration) == end


def test_duration_adds_to_dates_and_prints_canonically() -> None:
    assert parse_duration("P3M").add_to(date(2025, 11, 30)) == date(2026, 2, 28)
    assert str(parse_duration("p1y2mt30m")) == "P1Y2MT30M"
    with pytest.raises(TypeError):
        parse_duration("PT1H").add_to(date(2025, 1, 1))


@pytest.mark.parametrize("text", ["", "P", "PT", "1Y", "P1.5Y", "P-1D", "PT0S", "P1H", "P1DT"])
def test_malformed_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_duration_comparison_holds_for_every_start_date() -> None:
    six_months = parse_duration("P6M")
    assert not parse_duration("P181D").exceeds(six_months)  # 6 months is never under 181 days
    assert parse_duration("P182D").exceeds(six_months)  # from 1 September: 181 days
    assert parse_duration("P26W").exceeds(six_months)  # 182 days
    assert not parse_duration("P25W").exceeds(six_months)
    assert parse_duration("P1Y").exceeds(parse_duration("P11M30D"))
