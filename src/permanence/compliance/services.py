"""The sub-processors the deployment's configuration actually uses: moved to
``permanence.contracts.configured``, beside the register it is matched against (ADR 0038).
This module keeps the old import path."""

from permanence.contracts.configured import (
    KNOWN_PROVIDERS,
    SAFEGUARD_FR,
    SERVICE_FR,
    ConfiguredService,
    configured_hosts,
    configured_services,
    host_of,
    is_local,
)

__all__ = [
    "KNOWN_PROVIDERS",
    "SAFEGUARD_FR",
    "SERVICE_FR",
    "ConfiguredService",
    "configured_hosts",
    "configured_services",
    "host_of",
    "is_local",
]
