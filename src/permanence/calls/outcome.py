"""A call's outcome: one small state machine, one set of terminal codes used everywhere.

The provider tells us about a call in several callbacks that may arrive in any order (the
``<Dial>`` action, the ``<Record>`` action, the recording status callback, the call's status
callback) and one of them may never arrive. Each callback records a *fact* on the call
(answered and when, audio left, the provider's final status); :func:`settle` derives the
outcome from the facts, so the order of arrival does not matter and a later, stronger fact
(an answer, a voicemail's audio) corrects an earlier conclusion. docs/telephony.md has the
table of which callbacks lead to which outcome.

The codes are plain, stable strings: the live board, the statistics API, the usage report
CSV, the client portal, exports and metrics labels all use them as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from permanence.calls.model import Call

ANSWERED: Final = "answered"  # an operator talked with the caller (talk time kept)
VOICEMAIL: Final = "voicemail"  # nobody answered and the caller left audio
ABANDONED: Final = "abandoned"  # the caller hung up before an answer (wait time kept)
FAILED: Final = "failed"  # the call itself did not go through (busy, failed)
EXPIRED: Final = "expired"  # no final status ever came and the provider could not tell
TRANSFERRED: Final = "transferred"  # handed to a third party (set by the transfer flow)

OUTCOMES: Final = (ANSWERED, VOICEMAIL, ABANDONED, FAILED, EXPIRED, TRANSFERRED)

# The provider's final call statuses (Twilio's vocabulary, shared by SignalWire and Telnyx
# TeXML) and what they mean for a call nobody answered and no voicemail was left for.
FINAL_STATUSES: Final = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
_FAILED_STATUSES: Final = frozenset({"busy", "failed"})


def decide(call: Call) -> str | None:
    """The outcome the call's facts support, or None while the call is still going on.

    Precedence: a transfer (decided by its own flow), then audio left (voicemail), then an
    answer, then the provider's final status; an expired call stays expired until a real
    final status arrives. An outbound call (a call-back) the person never picked up is
    ``failed``, never ``abandoned`` (nobody was waiting for us).
    """
    if call.outcome == TRANSFERRED:
        return TRANSFERRED
    if call.voicemail:
        return VOICEMAIL
    if call.answered_at is not None:
        return ANSWERED
    if call.status in FINAL_STATUSES:
        if call.direction == "outbound":  # a call-back nobody picked up did not go through
            return FAILED
        return FAILED if call.status in _FAILED_STATUSES else ABANDONED
    if call.outcome == EXPIRED:
        return EXPIRED
    return None


def settle(call: Call) -> str | None:
    """Re-derive and store the outcome; returns it (None: not over yet)."""
    call.outcome = decide(call)
    return call.outcome


def expire(call: Call) -> str:
    """No final status came in time and the provider could not say: the call is over.

    Its status becomes ``expired`` (ours, not the provider's: a real final status arriving
    later still applies). A call whose facts already decide it (answered, voicemail) keeps
    that outcome; any other is ``expired`` -- its end time stays unknown (``ended_at``
    empty), so it is never counted as an abandonment with an invented wait.
    """
    from permanence.calls.model import EXPIRED_STATUS

    call.status = EXPIRED_STATUS
    if decide(call) is None:
        call.outcome = EXPIRED
        call.ended_reason = call.ended_reason or EXPIRED
        return EXPIRED
    return settle(call) or EXPIRED
