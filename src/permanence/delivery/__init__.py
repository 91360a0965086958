"""Delivery of messages to clients: the ledger, the channels, the worker and escalation."""
