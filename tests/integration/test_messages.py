"""Taking messages: minimisation, sealing, screening of free text."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from permanence.messages import service as messages
from permanence.messages.model import Message
from permanence.runtime import Runtime
from tests.factories import ctx_for, make_account, make_caller


def _take(
    rt: Runtime,
    account_id: uuid.UUID,
    caller_id: uuid.UUID,
    purpose: str,
    values: dict[str, object],
    **kw: object,
) -> Message:
    with rt.db.session(ctx_for(account_id)) as s:
        return messages.take_message(
            s, rt.keyring, caller_id=caller_id, purpose=purpose, values=values, **kw
        )  # type: ignore[arg-type]


def _count(rt: Runtime, account_id: uuid.UUID) -> int:
    with rt.db.session(ctx_for(account_id), readonly=True) as s:
        return len(s.scalars(select(Message.id)).all())


PLUMBER = {
    "last_name": "Martin",
    "phone": "01 99 00 12 34",
    "address": "3 rue des Lilas, 44000 Nantes",
    "urgency": "à planifier",
}


def test_message_is_sealed_and_reads_back(rt: Runtime) -> None:
    account = make_account(rt, "plomberie-durand")
    caller = make_caller(rt, account.id)
    msg = _take(
        rt, account.id, caller, "intervention", {**PLUMBER, "description": "Fuite sous l'évier"}
    )
    assert b"Fuite" not in msg.payload_sealed
    with rt.db.session(ctx_for(account.id)) as s:
        fields = messages.read_message(s, rt.keyring, messages.get_message(s, msg.id))
    assert fields["description"] == "Fuite sous l'évier"
    assert fields["phone"] == "+33199001234"


@pytest.mark.gdpr("Art. 5(1)(c)")
def test_field_outside_the_purpose_is_refused_and_nothing_stored(rt: Runtime) -> None:
    account = make_account(rt, "plomberie-durand")
    caller = make_caller(rt, account.id)
    with pytest.raises(messages.SubmissionRefused) as err:
        _take(
            rt,
            account.id,
            caller,
            "intervention",
            {**PLUMBER, "description": "x", "diagnosis": "y"},
        )
    assert "'diagnosis'" in str(err.value) and "'intervention'" in str(err.value)
    assert _count(rt, account.id) == 0


def test_health_detail_in_a_plumbers_note_must_be_removed(rt: Runtime) -> None:
    account = make_account(rt, "plomberie-durand")
    caller = make_caller(rt, account.id)
    note = "Fuite urgente, la cliente est diabétique et sous insuline"
    with pytest.raises(messages.UndeclaredDataInText) as err:
        _take(
            rt,
            account.id,
            caller,
            "intervention",
            {**PLUMBER, "description": note},
            confirm_undeclared=True,
        )
    assert {f.type for f in err.value.findings} == {"HEALTH"}
    assert all(f.refused for f in err.value.findings)
    assert "diabétique" not in str(err.value) and "insuline" not in str(err.value)
    assert _count(rt, account.id) == 0


@pytest.mark.gdpr("NIR")
def test_nir_is_refused_even_for_a_medical_account(rt: Runtime) -> None:
    account = make_account(rt, "cabinet-lefevre")
    caller = make_caller(rt, account.id)
    note = "Patient, numéro de sécu 1 84 12 75 108 245 22, fièvre"
    with pytest.raises(messages.UndeclaredDataInText) as err:
        _take(
            rt,
            account.id,
            caller,
            "message",
            {"last_name": "Martin", "phone": "0199001234", "note": note},
        )
    assert [f.type for f in err.value.findings] == ["NIR"]
    assert "1 84 12" not in str(err.value)


def test_undeclared_email_needs_confirmation(rt: Runtime) -> None:
    account = make_account(rt, "cabinet-lefevre")
    caller = make_caller(rt, account.id)
    values = {
        "last_name": "Martin",
        "phone": "0199001234",
        "note": "Envoyer l'ordonnance à camille@exemple.fr",
    }
    with pytest.raises(messages.UndeclaredDataInText) as err:
        _take(rt, account.id, caller, "message", values)
    assert [f.type for f in err.value.findings] == ["EMAIL"]
    assert not err.value.findings[0].refused
    _take(rt, account.id, caller, "message", values, confirm_undeclared=True)
    assert _count(rt, account.id) == 1
