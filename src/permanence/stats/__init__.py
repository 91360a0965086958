"""Supervision and reporting: the live board, statistics, usage reports and charts — all
computed from aggregates, never from a caller's personal data (docs/statistics.md)."""
