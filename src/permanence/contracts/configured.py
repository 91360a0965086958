"""The sub-processors the deployment's configuration actually uses.

The records (Art. 30), the sub-processor register (Art. 28(2)/(4)) and the transfer analysis
(Chapter V) must name every outside service that receives personal data, not only those
someone typed into the register. Four settings send data out of the deployment:

- the telephony provider (calls, recordings): ``PERMANENCE_TWILIO_API_BASE_URL`` once
  ``PERMANENCE_TWILIO_AUTH_TOKEN`` is set (Twilio, SignalWire), Telnyx once
  ``PERMANENCE_TELNYX_PUBLIC_KEY`` is set;
- the SMS gateway (on-call SMS): ``PERMANENCE_SMS_GATEWAY_URL``;
- the SMTP relay (notices, rights letters): ``PERMANENCE_SMTP_HOST``;
- the off-site storage of the encrypted backups: ``PERMANENCE_BACKUP_STORAGE``.

Each configured service is matched to the register's entry whose ``host`` is its host name
or a parent domain of it. A host on this machine or on a private network is the provider's
own, not a sub-processor. An unregistered service is still named (from a short table of
well-known providers, else by its host name), so the records stay true; the compliance check
``subprocessors.configured`` fails until it is registered and in effect.

Here, with the register it is matched against, below the records (``compliance.art30``) and the
contract on the SCC (``contracts.scc``) that both read it; ``compliance.services``, where it
was, re-exports it (ADR 0038).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.config import Settings
from permanence.contracts.model import SubProcessor
from permanence.contracts.subprocessors import EEA
from permanence.mandates.base import Safeguard

SERVICE_FR = {
    "telephony": "téléphonie (appels et enregistrements)",
    "sms": "passerelle SMS (astreinte)",
    "smtp": "relais de messagerie (e-mails)",
    "backup": "stockage des sauvegardes chiffrées",
}
# Well-known providers by domain: their name and the country of the entity that processes
# the data. Only a default for an unregistered service; the register's entry is what counts.
KNOWN_PROVIDERS: tuple[tuple[str, str, str], ...] = (
    ("twilio.com", "Twilio", "US"),
    ("signalwire.com", "SignalWire", "US"),
    ("telnyx.com", "Telnyx", "US"),
    ("sendgrid.net", "Twilio SendGrid", "US"),
    ("mailgun.org", "Mailgun", "US"),
    ("amazonaws.com", "Amazon Web Services", "US"),
    ("brevo.com", "Brevo", "FR"),
    ("sendinblue.com", "Brevo", "FR"),
    ("mailjet.com", "Mailjet", "FR"),
    ("ovh.net", "OVHcloud", "FR"),
    ("ovh.com", "OVHcloud", "FR"),
    ("scw.cloud", "Scaleway", "FR"),
    ("scaleway.com", "Scaleway", "FR"),
)
SAFEGUARD_FR = {
    Safeguard.ADEQUACY_DECISION.value: "décision d'adéquation (art. 45)",
    Safeguard.STANDARD_CONTRACTUAL_CLAUSES.value: "clauses contractuelles types (art. 46(2)(c))",
    Safeguard.BINDING_CORPORATE_RULES.value: "règles d'entreprise contraignantes (art. 47)",
    Safeguard.DEROGATION_ART49.value: "dérogation pour une situation particulière (art. 49)",
}


def host_of(value: str) -> str:
    """The host name of a URL or of a bare host (``smtp.example.com:587``), lower case."""
    value = value.strip()
    if "://" not in value:
        value = "//" + value
    return (urlsplit(value).hostname or "").lower().rstrip(".")


def is_local(host: str) -> bool:
    """This machine or a private network: the provider's own, not a sub-processor."""
    if host in {"", "localhost"} or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def configured_hosts(settings: Settings) -> list[tuple[str, str]]:
    """(kind, host) of every outside service the configuration sends personal data to."""
    out: list[tuple[str, str]] = []
    if settings.twilio_auth_token:
        out.append(("telephony", host_of(settings.twilio_api_base_url)))
    if settings.telnyx_public_key:
        out.append(("telephony", "api.telnyx.com"))
    if settings.sms_gateway_url:
        out.append(("sms", host_of(settings.sms_gateway_url)))
    if settings.smtp_host:
        out.append(("smtp", host_of(settings.smtp_host)))
    if settings.backup_storage:
        out.append(("backup", host_of(settings.backup_storage)))
    return [(kind, host) for kind, host in out if not is_local(host)]


def _matches(host: str, domain: str | None) -> bool:
    if not domain:
        return False
    domain = domain.lower().strip(".")
    return host == domain or host.endswith("." + domain)


@dataclass(frozen=True)
class ConfiguredService:
    """An outside service the deployment uses, with its register entry when there is one."""

    kind: str
    host: str
    entry: SubProcessor | None
    known: tuple[str, str] | None  # (name, country) from KNOWN_PROVIDERS

    @property
    def service_fr(self) -> str:
        return SERVICE_FR[self.kind]

    @property
    def name(self) -> str:
        if self.entry is not None:
            return self.entry.name
        return self.known[0] if self.known else self.host

    @property
    def country(self) -> str:
        """Two-letter code; "" when unknown (an unregistered, unknown provider)."""
        if self.entry is not None:
            return self.entry.country
        return self.known[1] if self.known else ""

    @property
    def in_effect(self) -> bool:
        return self.entry is not None and self.entry.status == "active"

    @property
    def transfer(self) -> bool:
        """Outside the EEA (or unknown: assume so until the register says otherwise)."""
        return self.country not in EEA

    @property
    def safeguard_fr(self) -> str:
        if not self.transfer:
            return "sans objet (EEE)"
        if self.entry is None or self.entry.safeguard not in SAFEGUARD_FR:
            return "garantie non déclarée (à inscrire au registre des sous-traitants)"
        return SAFEGUARD_FR[self.entry.safeguard]

    def describe_fr(self) -> str:
        country = self.country or "pays non déclaré"
        text = f"{self.name} ({self.service_fr}, {country}, {self.host})"
        if self.entry is None:
            text += " : utilisé par la configuration mais absent du registre des sous-traitants"
        elif self.entry.status != "active":
            text += " : changement annoncé aux clients, pas encore en vigueur"
        return text


def configured_services(session: Session, settings: Settings) -> list[ConfiguredService]:
    """The outside services in use, each matched to its register entry (removed ones aside)."""
    entries = list(
        session.scalars(
            select(SubProcessor)
            .where(SubProcessor.status != "removed", SubProcessor.host.is_not(None))
            .order_by(SubProcessor.status, SubProcessor.name)
        )
    )
    out = []
    for kind, host in configured_hosts(settings):
        # An entry in effect wins over one only proposed.
        candidates = [e for e in entries if _matches(host, e.host)]
        candidates.sort(key=lambda e: e.status != "active")
        known = next(((n, c) for d, n, c in KNOWN_PROVIDERS if _matches(host, d)), None)
        out.append(ConfiguredService(kind, host, candidates[0] if candidates else None, known))
    return out
