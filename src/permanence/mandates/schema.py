"""The mandate's public names in one place (the module the mandate grew in, kept so that
``from permanence.mandates.schema import Mandate`` keeps working).

Where each lives (docs/mandates.md): `errors` (what is raised), `durations` (ISO-8601),
`base` (normalisers, scalar types, vocabularies, `_Model`), `purposes` (purposes, fields,
retention), `sections` (controller, notice, recipients, on-call, recording, transfers,
hosting, agenda), `rules` (the rules across sections), `mandate` (`Mandate`), `parsing`
(parse, dump, diff). New code imports from those modules.
"""

from permanence.mandates.base import (
    LEGAL_MAXIMA,
    CountryCode,
    FieldCategory,
    FieldType,
    LegalBasis,
    MandateKind,
    RecordingMode,
    RetentionKind,
    Safeguard,
    SpecialCategoryBasis,
    Text,
    _Model,
    normalise_email,
    normalise_phone,
)
from permanence.mandates.durations import IsoDuration, parse_duration
from permanence.mandates.errors import (
    FieldNotInPurpose,
    MandateInvalid,
    MandateUnversioned,
    PurposeNotInMandate,
    _reject,
)
from permanence.mandates.mandate import Mandate
from permanence.mandates.parsing import diff_mandates, dump_mandate, parse_mandate
from permanence.mandates.purposes import ConsentWording, Field, Purpose, Retention
from permanence.mandates.sections import (
    Controller,
    Dpo,
    EmailNotificationRecipient,
    Hosting,
    Notice,
    OnCall,
    OnCallContact,
    PortalRecipient,
    Recipient,
    Recording,
    RecordingPeriod,
    Transfer,
    WebhookRecipient,
)

__all__ = [
    "LEGAL_MAXIMA",
    "ConsentWording",
    "Controller",
    "CountryCode",
    "Dpo",
    "EmailNotificationRecipient",
    "Field",
    "FieldCategory",
    "FieldNotInPurpose",
    "FieldType",
    "Hosting",
    "IsoDuration",
    "LegalBasis",
    "Mandate",
    "MandateInvalid",
    "MandateKind",
    "MandateUnversioned",
    "Notice",
    "OnCall",
    "OnCallContact",
    "PortalRecipient",
    "Purpose",
    "PurposeNotInMandate",
    "Recipient",
    "Recording",
    "RecordingMode",
    "RecordingPeriod",
    "Retention",
    "RetentionKind",
    "Safeguard",
    "SpecialCategoryBasis",
    "Text",
    "Transfer",
    "WebhookRecipient",
    "_Model",
    "_reject",
    "diff_mandates",
    "dump_mandate",
    "normalise_email",
    "normalise_phone",
    "parse_duration",
    "parse_mandate",
]
