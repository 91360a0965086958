"""Calls: the screen pop, notices read, consent, and the call log."""
