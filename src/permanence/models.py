"""Imports every table so that ``Base.metadata`` is complete (Alembic, tests, RLS)."""

from permanence.accounts.model import Account, Did, MandateVersion
from permanence.audit.model import AuditCheckpoint, AuditEntry, AuditHead
from permanence.calls.model import Call
from permanence.crypto.model import AccountKey, SubjectKey
from permanence.db import Base
from permanence.delivery.model import Delivery, DeliveryEvent, Escalation, WebhookSecret
from permanence.messages.model import Appointment, Message
from permanence.staff.model import ConfidentialityUndertaking, TrainingRecord, User
from permanence.subjects.model import Caller

__all__ = [
    "Account",
    "AccountKey",
    "Appointment",
    "AuditCheckpoint",
    "AuditEntry",
    "AuditHead",
    "Base",
    "Call",
    "Caller",
    "ConfidentialityUndertaking",
    "Delivery",
    "DeliveryEvent",
    "Did",
    "Escalation",
    "MandateVersion",
    "Message",
    "SubjectKey",
    "TrainingRecord",
    "User",
    "WebhookSecret",
]
