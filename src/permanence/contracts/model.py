"""Processor contracts (Art. 28(3)), sub-processors (Art. 28(2)/(4)), off-boarding certificates.

Contracts, sub-processor responses and certificates are account-owned (row-level security).
The sub-processor registry and its changes are the provider's own, shared by every account.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Date, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from permanence.db import Base, UTCDateTime, new_id, utcnow


class Contract(Base):
    """One version of the processing agreement with a client account.

    ``clauses`` maps each Art. 28(3) clause letter (a)-(h) to where the contract covers it (a
    section reference such as "art. 5.2"). A contract is signed only when all eight are
    covered. The documented instructions are the account's mandate: the contract names the
    version in force when it was signed, and later versions continue it (the mandate is
    versioned, the contract says so).
    """

    __tablename__ = "contracts"
    __table_args__ = (UniqueConstraint("account_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    reference: Mapped[str] = mapped_column(String(64))
    clauses: Mapped[str] = mapped_column(Text, default="{}")  # JSON {letter: section}
    mandate_version: Mapped[int | None] = mapped_column(Integer)
    effective_from: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    signed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    terminated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[uuid.UUID | None]
    # "scc-2021/915" when the product generated it on the Commission's standard contractual
    # clauses (contracts/scc.py); None for a contract recorded clause by clause.
    template: Mapped[str | None] = mapped_column(String(32))


class ContractDocument(Base):
    """The signed document of one contract version: the PDF as signed, its SHA-256, the date
    and the signatories of both parties (names and capacities, JSON)."""

    __tablename__ = "contract_documents"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    contract_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contracts.id", ondelete="CASCADE"), unique=True
    )
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    signatories: Mapped[str] = mapped_column(Text)  # JSON [{party, name, capacity}]
    # "generated": the PDF the product rendered with the signature block filled in;
    # "uploaded": a countersigned copy the parties signed outside the product.
    source: Mapped[str] = mapped_column(String(16))
    stored_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    stored_by: Mapped[uuid.UUID | None]


class SubProcessor(Base):
    """A sub-processor of the provider (hosting, SMS, e-mail, telephony…)."""

    __tablename__ = "subprocessors"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    service: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    # "eea" when the data stays in the EEA, else a Chapter V safeguard code.
    safeguard: Mapped[str] = mapped_column(String(40))
    hds_certified: Mapped[bool] = mapped_column(default=False)
    # The host name (or domain) of the endpoint this sub-processor serves when the deployment
    # is configured to use it (api.twilio.com, smtp-relay.brevo.com…): how a configured
    # service is matched to its entry (compliance/subprocessors.py).
    host: Mapped[str | None] = mapped_column(String(200))
    # proposed (notice given, objection window open) | active | removed
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SubProcessorChange(Base):
    """A change announced to every client: it takes effect after the objection window."""

    __tablename__ = "subprocessor_changes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    subprocessor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subprocessors.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # add | remove
    announced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    effective_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    applied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[uuid.UUID | None]


class SubProcessorNotice(Base):
    """The notice of one change to one client account, and its objection if any."""

    __tablename__ = "subprocessor_notices"
    __table_args__ = (UniqueConstraint("change_id", "account_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    change_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subprocessor_changes.id", ondelete="CASCADE")
    )
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    notified_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    emailed_to: Mapped[int] = mapped_column(Integer, default=0)
    objected_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    objection_reason: Mapped[str | None] = mapped_column(String(32))
    # Clause 7.7(a) of the SCC: an objection holds the change for this client until the
    # provider resolves it ("withdrawn": the client lifted it; "terminated": the contract
    # ended; "alternative": the client's data is kept off that sub-processor).
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolution: Mapped[str | None] = mapped_column(String(16))


class SubProcessorAgreement(Base):
    """Art. 28(4): the contract binding a sub-processor to the same obligations (flow-down),
    with the Art. 28(3) points it covers. The provider's own, shared by every account."""

    __tablename__ = "subprocessor_agreements"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    subprocessor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subprocessors.id", ondelete="CASCADE"), index=True
    )
    reference: Mapped[str] = mapped_column(String(120))
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    covers: Mapped[str] = mapped_column(Text)  # JSON list of Art. 28(3) letters
    sha256: Mapped[str | None] = mapped_column(String(64))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by: Mapped[uuid.UUID | None]


class OffboardingCertificate(Base):
    """The certificate of deletion of an off-boarded account (Art. 28(3)(g)), signed."""

    __tablename__ = "offboarding_certificates"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    document: Mapped[str] = mapped_column(Text)  # canonical JSON, the signed statement
    signature: Mapped[str] = mapped_column(String(128))
    public_key: Mapped[str] = mapped_column(String(64))


class SubProcessorDeletion(Base):
    """At off-boarding (Art. 28(3)(g), SCC clause 7.7(d) and 10(d)): each sub-processor that
    held the account's data is asked to confirm its deletion; the confirmation is recorded with
    its date and evidence (the reference of the sub-processor's written statement, ticket or
    certificate, and the SHA-256 of the document when one is kept). The off-boarding is not
    complete until every row is confirmed. Kept after the account's other rows go: it is the
    provider's proof, with no caller data."""

    __tablename__ = "subprocessor_deletions"
    __table_args__ = (UniqueConstraint("account_id", "subprocessor_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    subprocessor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subprocessors.id", ondelete="CASCADE")
    )
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_on: Mapped[dt.date | None] = mapped_column(Date)  # the sub-processor's date
    evidence: Mapped[str | None] = mapped_column(String(300))
    evidence_sha256: Mapped[str | None] = mapped_column(String(64))
    recorded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    recorded_by: Mapped[uuid.UUID | None]
