"""The breach register (Art. 33(5)): every incident, notified or not, with its clocks.

Use cases for the DPO desk: open a breach at the moment of awareness, fill the Art. 33(3)
contents, compute its scope from the audit log ("operator X between T1 and T2: whose data did
they read?"), decide, notify each affected controller (portal, plus an e-mail that only says a
notification is waiting), give supplements in phases (33(4)), and draft the communication to
callers (Art. 34). Nothing here decrypts anything: the scope is an indexed query on the audit
log's actor, time and subject columns.

This module is the feature's one entry for pages and commands; the stages live in ``base``
(shared), ``contents``, ``scope``, ``notices`` and ``views``.
"""

from permanence.breaches.base import (
    BULK_ACTIONS,
    CLOCK_STATE_FR,
    CONTENT_FIELDS,
    DATA_CATEGORIES,
    DECISION_FR,
    DESK_ROLES,
    FORMER_NOT_NOTIFIED_REASONS,
    NOT_NOTIFIED_REASONS,
    REFERENCE_LOCK_KEY,
    STATUS_FR,
    SUBJECT_CATEGORIES,
    SUBJECTS_DECISION_FR,
    SUBJECTS_REASONS,
    BreachConflict,
    BreachRefused,
)
from permanence.breaches.contents import (
    breach_by_reference,
    get_breach,
    missing_contents,
    missing_fields,
    missing_fr,
    open_breach,
    update_contents,
)
from permanence.breaches.notices import (
    Draft,
    affected_subjects,
    controller_notice_draft,
    notice_references,
    notices_for_account,
    notify_controllers,
    subjects_communication_draft,
)
from permanence.breaches.scope import (
    Scope,
    ScopedSubject,
    StaffMember,
    add_account,
    close,
    decide,
    reads_by_actor,
    scope_to_actor,
    staff_members,
    unnotified_accounts,
    user_by_email,
)
from permanence.breaches.views import (
    AccountImpact,
    BreachView,
    active_account_ids,
    breach_view,
    export_html,
    register,
)

__all__ = [
    "BULK_ACTIONS",
    "CLOCK_STATE_FR",
    "CONTENT_FIELDS",
    "DATA_CATEGORIES",
    "DECISION_FR",
    "DESK_ROLES",
    "FORMER_NOT_NOTIFIED_REASONS",
    "NOT_NOTIFIED_REASONS",
    "REFERENCE_LOCK_KEY",
    "STATUS_FR",
    "SUBJECTS_DECISION_FR",
    "SUBJECTS_REASONS",
    "SUBJECT_CATEGORIES",
    "AccountImpact",
    "BreachConflict",
    "BreachRefused",
    "BreachView",
    "Draft",
    "Scope",
    "ScopedSubject",
    "StaffMember",
    "active_account_ids",
    "add_account",
    "affected_subjects",
    "breach_by_reference",
    "breach_view",
    "close",
    "controller_notice_draft",
    "decide",
    "export_html",
    "get_breach",
    "missing_contents",
    "missing_fields",
    "missing_fr",
    "notice_references",
    "notices_for_account",
    "notify_controllers",
    "open_breach",
    "reads_by_actor",
    "register",
    "scope_to_actor",
    "staff_members",
    "subjects_communication_draft",
    "unnotified_accounts",
    "update_contents",
    "user_by_email",
]
