"""Screening of free text and text fields for the other Art. 9 categories and Art. 10
offence data: refused unless the purpose declares the basis (a law firm may hear
"garde à vue"; a plumber's note may not carry it)."""

from __future__ import annotations

import uuid

import pytest

from permanence.messages import service as messages
from permanence.runtime import Runtime
from tests.factories import ctx_for, make_account, make_caller

PLUMBER = {
    "last_name": "Martin",
    "phone": "01 99 00 12 34",
    "address": "3 rue des Lilas, 44000 Nantes",
    "urgency": "à planifier",
}


def _take(rt: Runtime, account_id: uuid.UUID, purpose: str, values: dict[str, object]) -> None:
    caller = make_caller(rt, account_id, phone="0199001299")
    with rt.db.session(ctx_for(account_id)) as s:
        messages.take_message(
            s,
            rt.keyring,
            caller_id=caller,
            purpose=purpose,
            values=values,
            confirm_undeclared=True,
        )


@pytest.mark.gdpr("Art. 10")
def test_art10_offence_data_is_refused_without_a_basis_and_kept_for_a_law_firm(
    rt: Runtime,
) -> None:
    plumber = make_account(rt, "plomberie-durand")
    note = "Rappeler après sa garde à vue, il a un casier judiciaire"
    with pytest.raises(messages.UndeclaredDataInText) as err:
        _take(rt, plumber.id, "intervention", {**PLUMBER, "description": note})
    assert [(f.type, f.start, f.refused) for f in err.value.findings] == [
        ("OFFENCE", 18, True),
        ("OFFENCE", 39, True),
    ]
    assert "garde" not in str(err.value)  # offsets and types, never the words
    firm = make_account(rt, "cabinet-moreau-avocats")
    _take(
        rt,
        firm.id,
        "message",
        {
            "last_name": "Durand",
            "phone": "0199001299",
            "subject": "nouveau dossier",
            "message": "Son fils est en garde à vue depuis ce matin",
        },
    )


@pytest.mark.gdpr("Art. 9(2)")
def test_art9_other_special_categories_are_refused_without_a_basis_even_in_text_fields(
    rt: Runtime,
) -> None:
    plumber = make_account(rt, "plomberie-durand")
    with pytest.raises(messages.UndeclaredDataInText) as err:
        _take(
            rt,
            plumber.id,
            "intervention",
            {**PLUMBER, "description": "Passer après la prière, il est pratiquant musulman"},
        )
    assert {f.type for f in err.value.findings} == {"SPECIAL_CATEGORY"}
    firm = make_account(rt, "cabinet-moreau-avocats")
    with pytest.raises(messages.UndeclaredDataInText) as err:
        _take(
            rt,
            firm.id,
            "message",
            {
                "last_name": "Durand",
                "phone": "0199001299",
                "subject": "autre",
                "case_reference": "délégué syndical CGT",  # a text field, screened too
                "message": "Rappeler",
            },
        )
    assert [(f.field, f.type) for f in err.value.findings] == [
        ("case_reference", "SPECIAL_CATEGORY"),
        ("case_reference", "SPECIAL_CATEGORY"),
    ]
