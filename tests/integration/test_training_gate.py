"""No personal data for staff who are not trained and bound to confidentiality."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from permanence.calls import service as calls
from permanence.context import AccessContext, Role
from permanence.db import utcnow
from permanence.runtime import Runtime
from permanence.staff.model import User
from permanence.staff.training import TrainingRequired, record_training, sign_undertaking
from permanence.subjects import service as subjects
from tests.factories import ctx_for, make_account, make_caller


def _new_operator(rt: Runtime) -> uuid.UUID:
    uid = uuid.uuid4()
    with rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        s.add(
            User(
                id=uid,
                email=f"{uid.hex}@p.example",
                display_name="Op",
                role=Role.OPERATOR,
                password_hash="!",
            )
        )
    return uid


@pytest.mark.gdpr("Art. 28(3)(b)")
def test_expired_training_is_refused_and_renewal_lets_them_in(rt: Runtime) -> None:
    account = make_account(rt)
    caller = make_caller(rt, account.id)
    op = _new_operator(rt)
    with rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        sign_undertaking(s, op)
        record_training(s, op, completed_at=utcnow() - dt.timedelta(days=400))
    ctx = ctx_for(account.id, actor_id=op, reason="call:test")
    with pytest.raises(TrainingRequired, match="training has expired"), rt.db.session(ctx) as s:
        calls.open_call(s, rt.keyring, dialled="+33478000001", caller_number="0199001234")
    with pytest.raises(TrainingRequired), rt.db.session(ctx) as s:
        subjects.identity(s, rt.keyring, subjects.get(s, caller))
    with rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        record_training(s, op)
    with rt.db.session(ctx) as s:
        opened = calls.open_call(s, rt.keyring, dialled="+33478000001", caller_number="0199001234")
        assert opened.known_caller is False


@pytest.mark.gdpr("Art. 28(3)(b)")
def test_unsigned_undertaking_is_named(rt: Runtime) -> None:
    account = make_account(rt)
    op = _new_operator(rt)
    with rt.db.session(AccessContext(role=Role.ADMIN, reason="test")) as s:
        record_training(s, op)
    with (
        pytest.raises(TrainingRequired, match="confidentiality undertaking"),
        rt.db.session(ctx_for(account.id, actor_id=op)) as s,
    ):
        calls.open_call(s, rt.keyring, dialled="+33478000001", caller_number=None)
