"""Envelope encryption, blind indexes and streaming file encryption."""
