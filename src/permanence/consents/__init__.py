"""Consent (Art. 7): given, proven, withdrawn in one action."""
