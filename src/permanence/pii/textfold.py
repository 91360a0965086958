"""Length-preserving case and accent folding.

Matching lexicon terms and cue words accent-insensitively must not shift character
offsets, so every character maps to exactly one character: ``É`` -> ``e``,
``ç`` -> ``c``, ``’`` -> ``'``. Characters without a one-character fold are kept.
"""

from __future__ import annotations

import unicodedata

__all__ = ["fold"]


def _build_table() -> dict[int, str]:
    table: dict[int, str] = {}
    # Latin-1 Supplement and Latin Extended-A cover French and most European names.
    for cp in range(0x41, 0x250):
        ch = chr(cp)
        base = unicodedata.normalize("NFD", ch)[0]
        low = base.lower()
        if len(low) == 1 and low != ch:
            table[cp] = low
    for ch in "’‘‛ʼ´`":
        table[ord(ch)] = "'"
    for ch in "‐‑‒–—":
        table[ord(ch)] = "-"
    table[0x0152] = "œ"  # Œ -> œ (lower() of Œ, kept as one char)
    table[0x00C6] = "æ"
    return table


_TABLE = _build_table()


def fold(text: str) -> str:
    """Lowercase, strip accents and normalise apostrophes/dashes; same length as input."""
    return text.translate(_TABLE)
