"""Imports every table so that ``Base.metadata`` is complete (Alembic, tests, RLS)."""

from permanence.accounts.model import Account, Did, MandateVersion
from permanence.audit.model import AuditCheckpoint, AuditEntry, AuditHead
from permanence.calls.model import Call
from permanence.consents.model import Consent
from permanence.crypto.model import AccountKey, SubjectKey
from permanence.db import Base
from permanence.messages.model import Appointment, Message
from permanence.staff.model import (
    ApiKey,
    AuthFailure,
    ConfidentialityUndertaking,
    TrainingRecord,
    User,
    WebSession,
)
from permanence.subjects.model import Caller

__all__ = [
    "Account",
    "AccountKey",
    "ApiKey",
    "Appointment",
    "AuditCheckpoint",
    "AuditEntry",
    "AuditHead",
    "AuthFailure",
    "Base",
    "Call",
    "Caller",
    "ConfidentialityUndertaking",
    "Consent",
    "Did",
    "MandateVersion",
    "Message",
    "SubjectKey",
    "TrainingRecord",
    "User",
    "WebSession",
]
