"""A caller who chose a call-back in the queue has an outcome of their own, whichever way the
call ends (calls.outcome): never ``abandoned``, never ``expired``."""

from __future__ import annotations

from permanence.calls import outcome as outcomes
from permanence.calls.model import Call


def _asked(status: str, direction: str = "inbound") -> Call:
    return Call(
        status=status,
        direction=direction,
        ended_reason=outcomes.CALLBACK_REASON,
        voicemail=False,
        answered_at=None,
        outcome=None,
    )


def test_a_call_back_asked_for_is_its_own_outcome_once_the_call_is_over() -> None:
    assert outcomes.decide(_asked("in-progress")) is None  # still on the line: not over
    for status in ("completed", "canceled", "busy"):
        assert outcomes.decide(_asked(status)) == outcomes.CALLBACK_REQUESTED
    # No final status ever came: the caller's request still stands, it is not "expired".
    assert outcomes.expire(_asked("in-progress")) == outcomes.CALLBACK_REQUESTED
    assert outcomes.CALLBACK_REQUESTED in outcomes.OUTCOMES
    # Only the caller's own call: an outbound call is never a request.
    assert outcomes.decide(_asked("completed", "outbound")) == outcomes.FAILED
