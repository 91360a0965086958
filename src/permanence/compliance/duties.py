"""The duties of the design brief's GDPR list (docs: /work/shared/spec/gdpr.md, "the spec"),
each with where the product implements it. Tests that prove a duty carry
``@pytest.mark.gdpr("<ref>")``; ``permanence.compliance.matrix`` joins the two into the
requirements matrix of the evidence pack, and a test fails when a duty has no test.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Duty:
    ref: str  # the article or rule, as the spec cites it
    duty: str  # what the product must do, in a line (not the legal text)
    where: str  # the modules (and pages or commands) that do it


DUTIES: tuple[Duty, ...] = (
    Duty(
        "Art. 5(1)(c)",
        "A field outside the declared purpose is never stored (minimisation)",
        "mandates/forms.py, messages/service.py",
    ),
    Duty(
        "Art. 5(1)(d)",
        "Data kept accurate: a rectification meets the same rules as the record it changes",
        "rights/service.py, mandates/forms.py",
    ),
    Duty(
        "Art. 5(1)(e)",
        "Records are deleted at the end of their retention period",
        "retention/service.py (serve's sweep, permanence retention run)",
    ),
    Duty(
        "Art. 5(2)",
        "Every change and read of personal data is in a tamper-evident audit log",
        "audit/service.py, audit/publish.py (permanence audit verify)",
    ),
    Duty(
        "Art. 6(1)",
        "Every purpose has a legal basis, shown in the Art. 30 record",
        "mandates/schema.py, compliance/art30.py",
    ),
    Duty(
        "Art. 7(1)",
        "Consent is recorded with wording version, channel, time and operator; withdrawal stops "
        "the processing",
        "consents/service.py",
    ),
    Duty(
        "Art. 9(2)",
        "Health data only under 9(2)(h) or explicit consent",
        "mandates/schema.py, mandates/forms.py",
    ),
    Duty(
        "Art. 10",
        "Offence data in free text or text fields is refused unless the purpose declares its "
        "basis (e.g. a lawyer, loi 78-17 art. 46)",
        "mandates/screening.py, mandates/schema.py (criminal_data_basis)",
    ),
    Duty(
        "Art. 12(1)",
        "What the subject receives is concise, intelligible and in plain French",
        "rights/package.py (rapport.html)",
    ),
    Duty(
        "Art. 12(3)",
        "Requests answered within a month, extended once with reasons sent",
        "rights/clock.py, rights/service.py",
    ),
    Duty(
        "Art. 12(4)",
        "A refusal states reasons, the CNIL complaint and the judicial remedy",
        "rights/service.py",
    ),
    Duty(
        "Art. 12(5)",
        "Repeated requests are flagged; refusing one as excessive needs a justification",
        "rights/service.py",
    ),
    Duty(
        "Art. 12(6)",
        "Identity checked proportionately (code or callback) before disclosure",
        "rights/service.py",
    ),
    Duty("Art. 15", "The subject's data and its context are given", "rights/package.py"),
    Duty(
        "Art. 15(3)",
        "A copy of the data is provided, one link per recipient",
        "rights/package.py",
    ),
    Duty(
        "Art. 16",
        "Rectification without undue delay, validated against the mandate",
        "rights/service.py",
    ),
    Duty(
        "Art. 17",
        "Erasure reaches every copy, backups included, unless a legal hold applies",
        "rights/service.py, backup/journal.py, retention/service.py",
    ),
    Duty(
        "Art. 19",
        "Every recipient of a record is told of its rectification or erasure",
        "delivery/service.py",
    ),
    Duty(
        "Art. 25",
        "Privacy by default: no recording by default; least privilege per tenant and per role",
        "telephony/service.py, web/deps.py, staff/auth.py, migrations (row-level security)",
    ),
    Duty(
        "Art. 28(2)",
        "Sub-processor changes are announced and clients may object before they take effect",
        "contracts/service.py",
    ),
    Duty(
        "Art. 28(3)",
        "The contract is generated on the Commission's SCC (Decision (EU) 2021/915) with its "
        "annexes from the mandate, the deployment and the register; each signed PDF is stored "
        "with its hash",
        "contracts/scc.py (permanence contract), compliance/checks.py (contracts.signed)",
    ),
    Duty(
        "Art. 28(4)",
        "Each sub-processor is bound by a flow-down agreement with the same obligations",
        "contracts/scc.py (permanence subprocessor flowdown)",
    ),
    Duty(
        "Art. 28(3)(b)",
        "Staff are bound to confidentiality and trained before reaching personal data",
        "staff/training.py",
    ),
    Duty(
        "Art. 28(3)(g)",
        "At the end of the contract data is returned, deleted and the deletion certified",
        "contracts/offboarding.py (permanence offboard)",
    ),
    Duty(
        "Art. 28(3)(h)",
        "The processor makes available what proves compliance and allows audits",
        "compliance/evidence.py (permanence compliance evidence, DPO page)",
    ),
    Duty(
        "Art. 35",
        "A DPIA on the CNIL PIA structure, validated by the DPO, current, for each processing "
        "that needs one (health data at scale, recording that evaluates staff)",
        "dpia/service.py, dpia/pages.py (/dpo/aipd, /portail/aipd), dpia/checks.py",
    ),
    Duty("Art. 30", "Records of processing, as processor and controller", "compliance/art30.py"),
    Duty(
        "Art. 32",
        "Encryption and integrity of personal data; restore in a timely manner",
        "crypto/, backup/",
    ),
    Duty(
        "Art. 33(2)",
        "The processor tells each affected controller of a breach without undue delay",
        "breaches/service.py, breaches/pages.py",
    ),
    Duty("Art. 33(3)", "A notification holds the Art. 33(3) contents", "breaches/service.py"),
    Duty(
        "Art. 33(5)",
        "Every breach is documented, with the reason when not notified",
        "breaches/service.py",
    ),
    Duty(
        "CNIL recording",
        "Callers are told before recording and can object before the end of the call",
        "telephony/service.py, recordings/provider_hooks.py, telephony/twiml.py",
    ),
    Duty(
        "CSP L.1111-8",
        "Health data only on a deployment declaring HDS hosting",
        "compliance/checks.py, accounts/service.py",
    ),
    Duty(
        "CSP L.1110-4",
        "Health data on a need-to-know basis: operators assigned per account, a medical message "
        "opened during a call with that caller or with a break-glass reason; access list export",
        "needtoknow/service.py (permanence access), messages/service.py, subjects/service.py",
    ),
    Duty("NIR", "No social security number is stored (décret 2019-341)", "pii/detector.py"),
)
