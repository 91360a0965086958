"""Data subjects (callers): sealed identifiers, blind-index lookups."""
