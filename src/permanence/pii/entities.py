"""What detection finds: the entity types, the ``Entity`` returned, and what the
recognisers share (a ``Span`` found in a ``Doc``, the text and its lazily computed views).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from permanence.pii.textfold import fold

PHONE = "PHONE"
EMAIL = "EMAIL"
NIR = "NIR"
IBAN = "IBAN"
CARD = "CARD"
SIREN = "SIREN"
SIRET = "SIRET"
DATE_OF_BIRTH = "DATE_OF_BIRTH"
ADDRESS = "ADDRESS"
PERSON = "PERSON"
HEALTH = "HEALTH"

# Order matters: it is the tie-breaker "more specific type first" in overlap resolution.
ALL_TYPES: tuple[str, ...] = (
    NIR,
    IBAN,
    SIRET,
    SIREN,
    CARD,
    EMAIL,
    PHONE,
    DATE_OF_BIRTH,
    ADDRESS,
    PERSON,
    HEALTH,
)
# Types recognised by shape (and usually a checksum): safe to mask in logs.
STRUCTURED_TYPES: frozenset[str] = frozenset({PHONE, EMAIL, NIR, IBAN, CARD, SIREN, SIRET})


@dataclass(frozen=True, slots=True)
class Entity:
    """A detected span: ``text[start:end] == entity.text``."""

    type: str
    start: int
    end: int
    text: str

    def to_dict(self) -> dict[str, str | int]:
        return {"type": self.type, "start": self.start, "end": self.end, "text": self.text}


class Span(NamedTuple):
    """A candidate found by a recognizer: ``doc.text[start:end]`` is of ``type``."""

    type: str
    start: int
    end: int


# Maximal runs of digits joined by single separators: national phone numbers, cards,
# SIREN and SIRET are all read from them. A run may follow a word's full stop ("Tél.06 12
# 34 56 78"), never a digit's comma or full stop (the decimals of "3,0612345678").
_DIGIT_RUN = re.compile(r"(?<![\w+\-/])(?<!\d[,.])\d+(?:[ .\-\u00a0\u202f]\d+)*(?![\w])")


class Doc:
    """The text plus lazily computed derived views shared by recognizers."""

    __slots__ = ("_folded", "_runs", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._folded: str | None = None
        self._runs: list[tuple[int, str]] | None = None

    @property
    def digit_runs(self) -> list[tuple[int, str]]:
        """(offset, run) for maximal runs of digit groups joined by one separator."""
        if self._runs is None:
            self._runs = [(m.start(), m.group()) for m in _DIGIT_RUN.finditer(self.text)]
        return self._runs

    @property
    def folded(self) -> str:
        if self._folded is None:
            self._folded = fold(self.text)
        return self._folded
