"""Where the operator console (web/pages/console.py) finds the voicemail counts; the voicemail
pages are ``permanence.recordings.pages`` (ADR 0021). To drop once the console imports that."""

from permanence.recordings.pages import new_per_account

__all__ = ["new_per_account"]
