"""The reasons the rights services and pages give in English, marked here so that
``pybabel extract`` keeps their French in the catalogue: the desk and the public page show
a refusal through ``gettext`` (``desk_pages._problems``), falling back to the English text."""

from __future__ import annotations


def N_(message: str) -> str:  # the usual gettext marker name
    return message


MESSAGES = (
    # pages
    N_("account: not a client account"),
    N_("account: choose the client account"),
    N_("kind: choose the right exercised"),
    N_("received_via: say how the request reached you"),
    N_("received_at: not a date and time"),
    N_("received_at: a request cannot be received in the future"),
    N_("caller: not a caller of this account"),
    N_("the code is not the one sent"),
    N_("no phone number on file"),
    N_("method: choose e-mail or SMS"),
    N_("reason: say how the identity was verified"),
    N_("confirm that the verification succeeded"),
    N_("confirm the erasure: it cannot be undone"),
    N_("reason: choose why more time is needed"),
    N_("reason: choose the reason for the refusal"),
    N_("from: not a date"),
    N_("to: not a date"),
    N_("state: not a state of a request"),
    N_("kind: not a right"),
    N_("received: the first day is after the last"),
    # rights.service
    N_("give the requester's phone number, e-mail address or name"),
    N_("scope: say what the objection is to ('recording' or a purpose code)"),
    N_("changes or statement: say what is to be rectified"),
    N_("scope: not a purpose of the mandate, nor 'recording'"),
    N_("the requester's identity is already verified"),
    N_("no data subject is linked to this request: there is nobody to verify"),
    N_("no e-mail address on file for this data subject"),
    N_("e-mail is not configured (PERMANENCE_SMTP_HOST)"),
    N_("no phone number on file for this data subject"),
    N_("SMS is not configured (PERMANENCE_SMS_GATEWAY_URL)"),
    N_("too many wrong codes: send a new code"),
    N_("the code has expired: send a new code"),
    N_("start the verification first"),
    N_("verify the requester's identity before answering the request"),
    N_("the time to answer was already extended once"),
    N_("an extension must be decided before the first due date"),
    N_("explanation: the reasons must be explained to the requester"),
    N_("cnil_complaint_informed: the requester must be told of the CNIL"),
    N_("judicial_remedy_informed: the requester must be told of the courts"),
    N_(
        "justification: refusing as unfounded or excessive must be justified "
        "(at least 20 characters)"
    ),
    N_("the request is completed: nothing more can be done with it"),
    N_("the request is refused: nothing more can be done with it"),
    N_("the request is cancelled: nothing more can be done with it"),
    N_("no such rights request"),
    N_("no such caller"),
    N_("no such account"),
    N_("phone number could not be read"),
    N_("phone number is not a possible number"),
    N_("e-mail address is not valid"),
    N_("e-mail domain is not valid"),
    N_("give a phone number, an e-mail address or a name to search for"),
    # rights.public
    N_("kind: choose the right you wish to exercise"),
    N_("give your phone number or your e-mail address"),
    N_("too many requests: try again later"),
    N_("this code can no longer be used: ask for a new one"),
    N_("this code has expired: ask for a new one"),
    N_("too many wrong codes: ask for a new one"),
)
