"""Permanence: a GDPR-compliant-by-construction platform for telephone answering services."""

__version__ = "0.1.0"
