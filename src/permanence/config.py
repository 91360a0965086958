"""Settings from the environment, in one typed module.

Every setting is read from a ``PERMANENCE_*`` variable; a bad value fails fast with a message
that names the variable. Secrets may come from files (``PERMANENCE_MASTER_KEY_FILE``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERMANENCE_", extra="ignore")

    data_dir: Path = Field(default=Path("./data"), description="Database, key file, recordings")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL used by the application. Default: SQLite in data_dir. "
        "On PostgreSQL this should be a role that does not own the tables, so that "
        "row-level security applies to it.",
    )
    database_migration_url: str | None = Field(
        default=None,
        description="URL of the role that owns the schema (migrations). Default: database_url.",
    )
    database_app_role: str | None = Field(
        default=None,
        description="PostgreSQL role that migrations grant table privileges to.",
    )
    master_key: str | None = Field(
        default=None, description="Base64 master key; overrides the key file when set."
    )
    master_key_file: Path | None = Field(default=None, description="Default: data_dir/master.key")
    master_key_command: str | None = Field(
        default=None,
        description="Command run at start (no shell) whose standard output is the base64 "
        "master key, e.g. a KMS client unwrapping it; used when master_key is unset.",
    )
    backup_key: str | None = Field(
        default=None,
        description="Base64 key (32 bytes) that encrypts backups; overrides backup_key_file. "
        "Keep it apart from the master key and from the backups.",
    )
    backup_key_file: Path | None = Field(
        default=None, description="File holding the backup key ('permanence keys backup-key')."
    )
    backup_storage: str | None = Field(
        default=None,
        description="Where the encrypted backups are kept off the machine (URL or host name "
        "of the storage provider): named as a sub-processor in the Art. 30 records.",
    )
    erasure_journal_file: Path | None = Field(
        default=None,
        description="Append-only copy of the erasure journal, replayed after a restore. "
        "Default: data_dir/erasure-journal.jsonl; better on another volume.",
    )
    erasure_epoch_file: Path | None = Field(
        default=None,
        description="The erasure-epoch keys (sealed under the master key) that wrap every "
        "subject key: rotated after erasures, the old key destroyed, so that a deleted key's "
        "residue in the database's files opens no more (ADR 0029). Default: "
        "data_dir/erasure-epochs.key; keep it with the master key, never in a backup.",
    )
    erasure_epoch_delay_minutes: int = Field(
        default=15,
        ge=0,
        description="'serve' rotates the erasure epoch this long after the first erasure "
        "since the last rotation (erasures in between are batched); 0: at the next tick.",
    )
    erasure_epoch_days: int = Field(
        default=7,
        ge=0,
        description="'serve' also rotates the erasure epoch when it is this old; 0: never.",
    )
    audit_checkpoint_file: Path | None = Field(
        default=None,
        description="Append-only file of signed audit checkpoints ('serve' adds one every "
        "audit_checkpoint_minutes when the log grew; 'audit verify' checks against every line). "
        "Default: data_dir/audit-checkpoints.jsonl; better on another volume or host.",
    )
    audit_checkpoint_minutes: int = Field(
        default=5,
        ge=0,
        description="How often 'serve' signs and exports a checkpoint when the log grew; 0: never.",
    )
    default_region: str = Field(default="FR", description="Region for parsing national numbers")
    public_base_url: str = Field(default="http://127.0.0.1:8000")
    opendsr_certificate_file: Path | None = Field(
        default=None,
        description="PEM X.509 certificate the OpenDSR API publishes (processor_certificate); "
        "with opendsr_key_file. Unset: a self-signed one derived from the master key (ADR 0028)",
    )
    opendsr_key_file: Path | None = Field(
        default=None,
        description="PEM private key (EC P-256 or RSA) of opendsr_certificate_file: signs "
        "OpenDSR responses and callbacks",
    )
    hds_hosting: bool = Field(
        default=False, description="The deployment declares HDS-certified hosting (health data)"
    )
    provider_name: str = Field(
        default="Permanence (prestataire de permanence téléphonique)",
        description="The provider's legal name (Art. 30 records, notices)",
    )
    provider_address: str = Field(default="", description="The provider's postal address")
    provider_contact_email: str = Field(
        default="dpo@permanence.example", description="The provider's data-protection contact"
    )
    sqlite_synchronous: str = Field(default="NORMAL")
    blind_index_bits: int = Field(default=16, ge=8, le=32)
    smtp_host: str | None = Field(
        default=None, description="SMTP server; unset: mail goes to a Maildir, DATA_DIR/outbox/"
    )
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = Field(default=False)
    smtp_user: str | None = Field(default=None)
    smtp_password: str | None = Field(default=None)
    mail_from: str = Field(default="permanence@localhost")
    sms_gateway_url: str | None = Field(
        default=None,
        description="Twilio-compatible Messages API URL for on-call SMS; unset: no SMS",
    )
    sms_from: str | None = Field(default=None, description="Sender number or id for SMS")
    sms_user: str | None = Field(default=None, description="Gateway user (Twilio account SID)")
    sms_password: str | None = Field(default=None, description="Gateway password (auth token)")
    delivery_interval: float = Field(
        default=30.0,
        ge=0,
        description="Seconds between delivery passes inside 'serve'; 0 runs none there",
    )
    log_level: str = Field(default="INFO")
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Comma-separated addresses or networks of the reverse proxies whose "
        "X-Forwarded-For/-Proto 'serve' trusts; '*' trusts anyone (never on a public port).",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=16 * 1024,
        le=64 * 1024 * 1024,
        description="Largest request body accepted, in bytes (413 beyond); routes with a "
        "smaller limit of their own keep it.",
    )
    metrics_token: str | None = Field(
        default=None,
        description="Bearer token that GET /metrics requires (Prometheus' "
        "authorization.credentials); unset: /metrics answers 404.",
    )
    twilio_auth_token: str | None = Field(
        default=None,
        description="Auth token that signs Twilio/SignalWire webhooks (X-Twilio-Signature) "
        "and authenticates REST calls; unset: the Twilio webhooks refuse every request.",
    )
    twilio_account_sid: str | None = Field(
        default=None, description="Account SID for the provider's REST API (recordings)."
    )
    twilio_api_base_url: str = Field(
        default="https://api.twilio.com",
        description="Base URL of the Twilio-compatible REST API (SignalWire: your space URL).",
    )
    telnyx_api_key: str | None = Field(
        default=None,
        description="Telnyx API key (bearer token) for the TeXML REST API: the queue's "
        "offers when PERMANENCE_ROUTING_PROVIDER=telnyx, and the recordings and stale calls "
        "of calls that came through Telnyx.",
    )
    telnyx_account_sid: str | None = Field(
        default=None, description="Telnyx account id in the TeXML REST API's paths."
    )
    telnyx_texml_application_sid: str | None = Field(
        default=None,
        description="The TeXML application that places the queue's offers and call-backs.",
    )
    telnyx_api_base_url: str = Field(
        default="https://api.telnyx.com", description="Base URL of Telnyx's API."
    )
    telnyx_public_key: str | None = Field(
        default=None,
        description="Base64 Ed25519 public key that signs Telnyx TeXML webhooks; unset: the "
        "Telnyx webhooks refuse every request.",
    )
    telephony_operators: str = Field(
        default="client:operators",
        description="Where calls are offered: client:NAME, sip:URI, or an E.164 number.",
    )
    telephony_ring_seconds: int = Field(default=25, ge=5, le=600)
    # The in-hours leg (src/permanence/routing, docs/telephony.md "The queue"):
    routing_mode: Literal["dial", "queue"] = Field(
        default="dial",
        description="dial: ring PERMANENCE_TELEPHONY_OPERATORS; queue: the provider's queue, "
        "each call offered to one available operator's own device.",
    )
    routing_provider: Literal["twilio", "telnyx"] = Field(
        default="twilio",
        description="Whose REST API places the queue's offers, transfers and call-backs "
        "(and signs their webhooks): twilio (or SignalWire), or telnyx (TeXML).",
    )
    routing_queue_scope: Literal["account", "shared"] = Field(
        default="account", description="One provider queue per client account, or shared."
    )
    routing_wrap_up_seconds: int = Field(
        default=30, ge=0, le=3600, description="Automatic wrap-up after a queued call."
    )
    telephony_voicemail_seconds: int = Field(default=120, ge=10, le=600)
    telephony_stale_minutes: int = Field(
        default=180,
        ge=10,
        le=7 * 24 * 60,
        description="A call with no final status after this long is resolved: asked of the "
        "provider's REST API when configured, else marked expired.",
    )
    recording_download_attempts: int = Field(
        default=8,
        ge=1,
        le=50,
        description="Attempts to fetch a recording before giving up (with backoff).",
    )
    recording_download_max_hours: int = Field(
        default=24,
        ge=1,
        le=24 * 30,
        description="A recording still at the provider after this long fails the compliance check.",
    )
    recordings_backend: str = Field(
        default="local",
        description="Where encrypted recordings are stored: local (DATA_DIR/recordings) or "
        "postgresql (in the database, for replicas on several hosts; ADR 0036).",
    )
    retention_interval_minutes: int = Field(
        default=60, ge=0, description="How often 'serve' runs the retention sweep; 0: never."
    )
    retention_batch_size: int = Field(default=5000, ge=1, le=30000)
    backup_retention_days: int = Field(
        default=30,
        ge=1,
        le=400,
        description="Days a backup archive is kept before rotation: the off-boarding "
        "certificate dates the expiry of the last backup holding the account from it.",
    )
    staff_stats_retention_days: int = Field(
        default=90,
        ge=1,
        le=400,
        description="Days per-operator statistics are kept (CNIL: aggregates, not monitoring).",
    )
    signin_lock_threshold: int = Field(
        default=10,
        ge=3,
        le=1000,
        description="Failed sign-ins on one e-mail before the account is locked until the "
        "e-mailed link or an administrator lifts it (docs/adr/0014).",
    )
    api_docs: bool = Field(
        default=False,
        description="Serve the interactive API documentation at /docs and /redoc (its page "
        "loads scripts from a CDN, outside the content security policy): off by default.",
    )

    @field_validator("default_region")
    @classmethod
    def _region(cls, v: str) -> str:
        if len(v) != 2 or not v.isalpha():
            raise ValueError("must be a two-letter region code such as FR")
        return v.upper()

    @field_validator("sqlite_synchronous")
    @classmethod
    def _sync(cls, v: str) -> str:
        if v.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError("must be one of OFF, NORMAL, FULL, EXTRA")
        return v.upper()

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies(cls, v: str) -> str:
        import ipaddress

        items = [i.strip() for i in v.split(",") if i.strip()]
        if not items:
            raise ValueError("give at least one address, e.g. 127.0.0.1")
        if items == ["*"]:
            return "*"
        for item in items:
            try:
                ipaddress.ip_network(item)  # as uvicorn reads it: 10.0.0.0/8, not 10.0.0.1/8
            except ValueError:
                raise ValueError(
                    "must be '*' alone or comma-separated IP addresses or networks such as "
                    "10.0.0.0/8 (no host names)"
                ) from None
        return ",".join(items)

    @field_validator("recordings_backend")
    @classmethod
    def _backend(cls, v: str, info: ValidationInfo) -> str:
        # S3-compatible storage is a documented port (filestore.py), not shipped yet.
        if v not in ("local", "postgresql"):
            raise ValueError("must be local or postgresql")
        # The database backend is for replicas on several hosts; SQLite is one process on one
        # host, and a download streamed into it would hold its only write lock (ADR 0036).
        # A field error (declared after database_url), so that the command line names it.
        url = info.data.get("database_url") or ""
        if v == "postgresql" and not url.startswith("postgresql"):
            raise ValueError(
                "PERMANENCE_RECORDINGS_BACKEND=postgresql needs a PostgreSQL database "
                "(PERMANENCE_DATABASE_URL); with SQLite keep the recordings in the data "
                "directory (local)"
            )
        return v

    @field_validator("telephony_operators")
    @classmethod
    def _operators(cls, v: str) -> str:
        if not (v.startswith(("client:", "sip:")) or (v.startswith("+") and v[1:].isdigit())):
            raise ValueError("must be client:NAME, sip:URI or an E.164 number such as +33...")
        return v

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'permanence.db').resolve()}"

    @property
    def effective_migration_url(self) -> str:
        return self.database_migration_url or self.effective_database_url

    @property
    def effective_master_key_file(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"

    @property
    def effective_erasure_epoch_file(self) -> Path:
        return self.erasure_epoch_file or self.data_dir / "erasure-epochs.key"

    @property
    def effective_erasure_journal_file(self) -> Path:
        return self.erasure_journal_file or self.data_dir / "erasure-journal.jsonl"

    @property
    def effective_audit_checkpoint_file(self) -> Path:
        return self.audit_checkpoint_file or self.data_dir / "audit-checkpoints.jsonl"

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def is_postgres(self) -> bool:
        return self.effective_database_url.startswith("postgresql")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
