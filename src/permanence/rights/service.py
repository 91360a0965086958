"""Rights requests: intake, identity verification, the clock, lookup, and what each kind of
request does when executed. Every function takes a session opened by ``Database.session(ctx)``
(one transaction) except the ``run_*`` helpers, which also do the file work after the commit.

Who may do what: anyone serving the account may take a request in (client users; operators,
supervisors and the DPO when a caller asks on the phone, Art. 28(3)(e)) and verify the
requester. The client (the controller) decides: extends, refuses, executes. The provider's DPO
may execute, extend and refuse on the client's instruction from the DPO desk (the processor
supplies the tools, ADR 0011); the client sees every step in its portal and the audit log.

This module is the feature's one entry for routes, pages and commands; the stages live in
``base`` (shared), ``intake``, ``verification``, ``deadlines``, ``lookup``, ``decisions``,
``execution`` and one module per right executed (``rectification``, ``restriction``,
``erasure``; access and portability build their files in ``package``).
"""

# Imported for its effect: an OpenDSR request's change of status enqueues its callbacks.
from permanence.rights import callbacks as _callbacks  # noqa: F401
from permanence.rights.base import (
    CODE_TTL,
    CONFIRMED_METHODS,
    CONTROLLER,
    DOWNLOAD_TTL,
    EXECUTORS,
    IDENTITY_FIELDS,
    IDENTITY_SPEC,
    MAX_CODE_ATTEMPTS,
    MAX_TEXT,
    MIN_JUSTIFICATION,
    RECEIVED_VIA,
    REPEAT_WINDOW,
    SUBMITTERS,
    VERIFICATION_METHODS,
    Outbox,
    TooManyCodeAttempts,
    by_external_id,
    details_of,
    get,
    is_closed,
    list_requests,
    subject_of,
)
from permanence.rights.deadlines import (
    DueReminder,
    due_soon,
    extend,
    overdue_count,
    send_reminders,
    wait_for_information,
)
from permanence.rights.decisions import Refusal, cancel, refuse
from permanence.rights.erasure import SubjectErased, certificate_html, erase_subject, replay_erasure
from permanence.rights.execution import Executed, execute, holds_on, run_execute
from permanence.rights.intake import Intake, Requester, submit
from permanence.rights.letters import (
    SentLetter,
    acknowledge,
    contact_on_file,
    letters_of,
    tell_requester,
)
from permanence.rights.lookup import SubjectRecords, find_records, recipients, records_of
from permanence.rights.restriction import lift_restriction
from permanence.rights.verification import add_information, start_verification, verify

__all__ = [
    "CODE_TTL",
    "CONFIRMED_METHODS",
    "CONTROLLER",
    "DOWNLOAD_TTL",
    "EXECUTORS",
    "IDENTITY_FIELDS",
    "IDENTITY_SPEC",
    "MAX_CODE_ATTEMPTS",
    "MAX_TEXT",
    "MIN_JUSTIFICATION",
    "RECEIVED_VIA",
    "REPEAT_WINDOW",
    "SUBMITTERS",
    "VERIFICATION_METHODS",
    "DueReminder",
    "Executed",
    "Intake",
    "Outbox",
    "Refusal",
    "Requester",
    "SentLetter",
    "SubjectErased",
    "SubjectRecords",
    "TooManyCodeAttempts",
    "acknowledge",
    "add_information",
    "by_external_id",
    "cancel",
    "certificate_html",
    "contact_on_file",
    "details_of",
    "due_soon",
    "erase_subject",
    "execute",
    "extend",
    "find_records",
    "get",
    "holds_on",
    "is_closed",
    "letters_of",
    "lift_restriction",
    "list_requests",
    "overdue_count",
    "recipients",
    "records_of",
    "refuse",
    "replay_erasure",
    "run_execute",
    "send_reminders",
    "start_verification",
    "subject_of",
    "submit",
    "tell_requester",
    "verify",
    "wait_for_information",
]
