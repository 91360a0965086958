"""Rule-based detection of French personal data in free text.

The recognizers (``identifiers.py``: read by shape and checksum; ``contextual.py``: read from
the words around) yield candidate spans (``entities.py``); :func:`detect` then resolves overlaps
by preferring checksum-validated types, then longer spans, then the more specific type.
Everything is precompiled at import time; a call makes at most one regex pass per
recognizer over the text (plus one over its folded copy for the word-based ones).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence

from permanence.pii.contextual import addresses, health, persons
from permanence.pii.entities import (
    ADDRESS,
    ALL_TYPES,
    CARD,
    DATE_OF_BIRTH,
    EMAIL,
    HEALTH,
    IBAN,
    NIR,
    PERSON,
    PHONE,
    SIREN,
    SIRET,
    STRUCTURED_TYPES,
    Doc,
    Entity,
    Span,
)
from permanence.pii.identifiers import (
    dates_of_birth,
    emails,
    ibans,
    nirs,
    numbers,
    phones,
)

__all__ = [
    "ALL_TYPES",
    "STRUCTURED_TYPES",
    "Entity",
    "detect",
    "mask",
    "replace_entities",
]

# Checksum-validated identifiers beat shape-only ones, which beat contextual ones.
_RANK = {
    NIR: 3,
    IBAN: 3,
    SIRET: 3,
    SIREN: 3,
    CARD: 3,
    EMAIL: 2,
    PHONE: 2,
    DATE_OF_BIRTH: 1,
    ADDRESS: 1,
    PERSON: 1,
    HEALTH: 0,
}
_SPECIFICITY = {t: i for i, t in enumerate(ALL_TYPES)}


# --------------------------------------------------------------------------- engine

_Recognizer = Callable[[Doc], Iterator[Span]]
# Which recognizers to run for each requested type.
_RECOGNIZERS: dict[str, _Recognizer] = {
    PHONE: phones,
    EMAIL: emails,
    NIR: nirs,
    IBAN: ibans,
    CARD: numbers,
    SIREN: numbers,
    SIRET: numbers,
    DATE_OF_BIRTH: dates_of_birth,
    ADDRESS: addresses,
    PERSON: persons,
    HEALTH: health,
}
_NEEDS_DIGIT = frozenset({phones, nirs, ibans, numbers, dates_of_birth, addresses})


def _validate_types(types: Collection[str] | None) -> frozenset[str]:
    if types is None:
        return frozenset(ALL_TYPES)
    wanted = frozenset(types)
    unknown = wanted - frozenset(ALL_TYPES)
    if unknown:
        raise ValueError(f"unknown entity type(s): {', '.join(sorted(unknown))}")
    return wanted


def _resolve(spans: list[Span]) -> list[Span]:
    """Greedy non-overlapping selection: rank, then length, then specificity."""
    ordered = sorted(
        set(spans),
        key=lambda s: (-_RANK[s.type], s.start - s.end, _SPECIFICITY[s.type], s.start),
    )
    kept: list[Span] = []
    for span in ordered:
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    kept.sort(key=lambda s: s.start)
    return kept


def detect(text: str, types: Collection[str] | None = None) -> list[Entity]:
    """Find personal data in ``text``.

    Returns entities sorted by start offset, without overlaps. ``types`` restricts
    detection (and overlap resolution) to the given type names; unknown names raise
    ``ValueError``.
    """
    wanted = _validate_types(types)
    if not text:
        return []
    doc = Doc(text)
    has_digit = any(ch.isdigit() for ch in text)
    recognizers: list[_Recognizer] = []
    for t in ALL_TYPES:
        rec = _RECOGNIZERS[t]
        if t in wanted and rec not in recognizers and (has_digit or rec not in _NEEDS_DIGIT):
            recognizers.append(rec)
    spans = [span for rec in recognizers for span in rec(doc) if span.type in wanted]
    return [Entity(s.type, s.start, s.end, text[s.start : s.end]) for s in _resolve(spans)]


def mask(
    text: str,
    types: Collection[str] | None = None,
    placeholder: str = "[{type}]",
) -> str:
    """Replace each detected entity by ``placeholder.format(type=...)``."""
    return replace_entities(text, detect(text, types), placeholder)


def replace_entities(text: str, entities: Sequence[Entity], placeholder: str = "[{type}]") -> str:
    """Replace already detected, non-overlapping, sorted ``entities`` in ``text``."""
    if not entities:
        return text
    parts: list[str] = []
    pos = 0
    for e in entities:
        parts.append(text[pos : e.start])
        parts.append(placeholder.format(type=e.type))
        pos = e.end
    parts.append(text[pos:])
    return "".join(parts)
