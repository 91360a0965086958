"""Imports every table so that ``Base.metadata`` is complete (Alembic, tests, RLS)."""

from permanence.accounts.model import Account, Did, MandateVersion
from permanence.audit.model import AuditCheckpoint, AuditEntry, AuditHead
from permanence.audits.model import AuditAction, PracticeAudit
from permanence.backup.model import ErasureJournal
from permanence.breaches.model import (
    Breach,
    BreachAccount,
    BreachNotice,
    BreachSubject,
    BreachSupplement,
)
from permanence.calls.model import Call
from permanence.calls.presence_model import OperatorDailyStats, OperatorPresence
from permanence.consents.model import Consent
from permanence.contracts.model import (
    Contract,
    ContractDocument,
    OffboardingCertificate,
    SubProcessor,
    SubProcessorAgreement,
    SubProcessorChange,
    SubProcessorDeletion,
    SubProcessorNotice,
)
from permanence.crypto.model import AccountKey, KeyEpoch, SubjectKey
from permanence.db import Base
from permanence.delivery.model import Delivery, DeliveryEvent, Escalation, WebhookSecret
from permanence.dpia.model import Dpia
from permanence.evaluations.model import Evaluation
from permanence.filestore_db import StoredFile, StoredFileChunk
from permanence.messages.model import Appointment, Message
from permanence.needtoknow.model import BreakGlassAccess, OperatorAssignment
from permanence.recordings.model import Recording, RecordingDownload
from permanence.retention.model import LegalHold
from permanence.rights.model import (
    CallerCode,
    CallerThrottle,
    Download,
    Rectification,
    RightsLetter,
    RightsRequest,
)
from permanence.routing.model import OperatorLine, QueueEntry
from permanence.staff.credentials_model import AuthToken, RecoveryCode
from permanence.staff.model import (
    ApiKey,
    AuthFailure,
    ConfidentialityUndertaking,
    TrainingAttestation,
    TrainingCourse,
    TrainingRecord,
    User,
    WebSession,
)
from permanence.stats import aggregates as _stats_aggregates  # noqa: F401 (its session events)
from permanence.stats.model import (
    AccountAnswerSeconds,
    AccountHourlyStats,
)
from permanence.subjects.model import Caller

__all__ = [
    "Account",
    "AccountAnswerSeconds",
    "AccountHourlyStats",
    "AccountKey",
    "ApiKey",
    "Appointment",
    "AuditAction",
    "AuditCheckpoint",
    "AuditEntry",
    "AuditHead",
    "AuthFailure",
    "AuthToken",
    "Base",
    "Breach",
    "BreachAccount",
    "BreachNotice",
    "BreachSubject",
    "BreachSupplement",
    "BreakGlassAccess",
    "Call",
    "Caller",
    "CallerCode",
    "CallerThrottle",
    "ConfidentialityUndertaking",
    "Consent",
    "Contract",
    "ContractDocument",
    "Delivery",
    "DeliveryEvent",
    "Did",
    "Download",
    "Dpia",
    "ErasureJournal",
    "Escalation",
    "Evaluation",
    "KeyEpoch",
    "LegalHold",
    "MandateVersion",
    "Message",
    "OffboardingCertificate",
    "OperatorAssignment",
    "OperatorDailyStats",
    "OperatorLine",
    "OperatorPresence",
    "PracticeAudit",
    "QueueEntry",
    "Recording",
    "RecordingDownload",
    "RecoveryCode",
    "Rectification",
    "RightsLetter",
    "RightsRequest",
    "StoredFile",
    "StoredFileChunk",
    "SubProcessor",
    "SubProcessorAgreement",
    "SubProcessorChange",
    "SubProcessorDeletion",
    "SubProcessorNotice",
    "SubjectKey",
    "TrainingAttestation",
    "TrainingCourse",
    "TrainingRecord",
    "User",
    "WebSession",
    "WebhookSecret",
]
