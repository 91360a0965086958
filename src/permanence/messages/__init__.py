"""Messages and appointments taken for a client, and their delivery."""

# The account figures' aggregates follow every write of calls, messages, appointments and
# recordings: their session events must be registered in any process that imports these
# models (ADR 0032; permanence.calls does the same).
from permanence.stats import aggregates as _aggregates  # noqa: F401
