"""Calls: the screen pop, notices read, consent, and the call log."""

# The account figures' aggregates follow every write of calls, messages, appointments and
# recordings: their session events must be registered in any process that imports these
# models (ADR 0032; permanence.messages does the same).
from permanence.stats import aggregates as _aggregates  # noqa: F401
