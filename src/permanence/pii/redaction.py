"""Logging integration and helpers built on :func:`permanence.pii.detector.detect`."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from urllib.parse import unquote, unquote_plus

from permanence.pii.detector import STRUCTURED_TYPES, Entity, detect, replace_entities

__all__ = ["RedactingFilter", "mask_log_text", "undeclared"]

# Our record ids: hex digits that a checksum (IBAN, card) can accept by chance, about one
# random UUID in 300. They are never personal data, and a log line must keep them whole.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
# A word of a log line that carries percent-escapes or a query string: a URL or part of one.
_URLISH = re.compile(r"[^\s\"'<>]*(?:%[0-9A-Fa-f]{2}|\?[^\s\"'<>=]+=)[^\s\"'<>]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A query value kept as it is: short, one word, no '@' (ids, codes, page numbers, dates).
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.:/-]{0,64}")
QUERY_PLACEHOLDER = "[VALUE]"


def _escape_controls(text: str) -> str:
    # A decoded %0A must not start a forged log line.
    return _CONTROL.sub(lambda m: f"%{ord(m.group()):02X}", text)


def _decode_url(token: str) -> str:
    """The URL as a person would read it: the path decoded, each query value decoded and kept
    only when it is a plain word (free text - a name typed in a search box - is blanked)."""
    path, sep, query = token.partition("?")
    out = _escape_controls(unquote(path))
    if not sep:
        return out
    pairs = []
    for item in query.split("&"):
        key, eq, value = item.partition("=")
        key = _escape_controls(unquote_plus(key))
        value = unquote_plus(value)
        if value and not _PLAIN_VALUE.fullmatch(value):
            value = QUERY_PLACEHOLDER
        pairs.append(f"{key}{eq}{_escape_controls(value)}")
    return f"{out}?{'&'.join(pairs)}"


def mask_log_text(
    text: str, types: Collection[str] = STRUCTURED_TYPES, placeholder: str = "[{type}]"
) -> str:
    """``text`` with personal data masked, as it goes into a log: URLs are decoded first (so
    ``camille.martin%40exemple.fr`` is seen as the e-mail address it is), and UUIDs are
    left whole (never taken for an IBAN or a card number)."""
    if "%" in text or "?" in text:
        text = _URLISH.sub(lambda m: _decode_url(m.group()), text)
    # Same-length blanks: the detector's offsets stay valid in the original text.
    scanned = _UUID.sub(lambda m: "#" * len(m.group()), text)
    return replace_entities(text, detect(scanned, types), placeholder)


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
        return mask_log_text(text, self.types, self.placeholder)

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
