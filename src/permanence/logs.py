"""Logging set-up: every handler masks personal data before a record is written.

The product promises that logs carry no personal data. Code is written not to log any, and
this filter is the second line: structured identifiers (phone, e-mail, NIR, IBAN, card…) that
slip into a message, its arguments or a traceback are masked.
"""

from __future__ import annotations

import logging

from permanence.pii import RedactingFilter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own handlers: mask what they write too (its access log has query strings).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        for h in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in h.filters):
                h.addFilter(RedactingFilter())
