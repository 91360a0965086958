"""Logging integration and helpers built on :func:`permanence.pii.detector.detect`."""

from __future__ import annotations

import logging
from collections.abc import Collection

from permanence.pii.detector import STRUCTURED_TYPES, Entity, detect, mask

__all__ = ["RedactingFilter", "undeclared"]


class RedactingFilter(logging.Filter):
    """Mask personal data in log records instead of dropping them.

    The message is formatted first (``record.getMessage()``) so that values passed
    as %-args are masked too; ``record.args`` is then cleared so that handlers do
    not format it again. Formatted exception and stack text are masked as well.
    By default only structured types are masked: they are cheap and precise, while
    names and health words would make logs hard to read for little gain.
    Attach it to handlers (``handler.addFilter``) so that it also covers records
    propagated from child loggers.
    """

    def __init__(
        self,
        name: str = "",
        types: Collection[str] = STRUCTURED_TYPES,
        placeholder: str = "[{type}]",
    ) -> None:
        super().__init__(name)
        self.types = frozenset(types)
        self.placeholder = placeholder

    def _mask(self, text: str) -> str:
        return mask(text, self.types, self.placeholder)

    def filter(self, record: logging.LogRecord) -> bool:
        if not super().filter(record):
            return False
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):
            # Malformed args: keep both parts visible (masked) rather than lose the record.
            message = f"{record.msg} {record.args!r}"
        record.msg = self._mask(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self._mask(record.stack_info)
        return True


def undeclared(text: str, allowed_types: Collection[str]) -> list[Entity]:
    """Entities of a type outside ``allowed_types``.

    Detection runs on all types so that overlaps are resolved exactly as
    :func:`detect` would, then allowed types are filtered out.
    """
    allowed = frozenset(allowed_types)
    return [e for e in detect(text) if e.type not in allowed]
