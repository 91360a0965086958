"""The blind held-out notes are well formed. Their scores are measured, never gated:
``python bench/pii_blind.py`` (docs/pii.md, "Blind held-out notes")."""

from __future__ import annotations

import pytest
from bench.pii_blind import load_blind, parse_note

from permanence.pii import ALL_TYPES


def test_the_blind_notes_parse_into_spans_on_their_own_text() -> None:
    docs = load_blind()
    assert len(docs) >= 50
    assert len({d.id for d in docs}) == len(docs)
    for d in docs:
        assert "[[" not in d.text and "]]" not in d.text
        for kind, start, end in d.entities:
            assert kind in ALL_TYPES
            assert 0 <= start < end <= len(d.text)
            assert d.text[start:end] == d.text[start:end].strip(), (d.id, kind)


def test_markup_offsets_are_those_of_the_plain_text() -> None:
    text, spans = parse_note("Mme [[PERSON:Roy]], [[PHONE:06 12 34 56 78]].")
    assert text == "Mme Roy, 06 12 34 56 78."
    assert spans == (("PERSON", 4, 7), ("PHONE", 9, 23))
    with pytest.raises(ValueError, match="unknown type"):
        parse_note("[[NAME:Roy]]")
    with pytest.raises(ValueError, match="unbalanced"):
        parse_note("[[PERSON:Roy]")
