"""Audits of the service itself and of its sub-processors, with their follow-up actions."""
