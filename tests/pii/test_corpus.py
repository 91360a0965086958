"""Regression gate: the labelled corpus must keep its recall on the structured types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from permanence.pii import ALL_TYPES, detect
from permanence.pii.evaluation import load_corpus, score

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "pii-fr" / "corpus.jsonl"
FLOOR = {
    "PHONE": 0.95,
    "EMAIL": 0.95,
    "NIR": 0.95,
    "IBAN": 0.95,
    "CARD": 0.95,
    "SIRET": 0.95,
    "SIREN": 0.95,
    "DATE_OF_BIRTH": 0.9,
    "ADDRESS": 0.9,
    "PERSON": 0.85,
    "HEALTH": 0.85,
}
PRECISION_FLOOR = 0.9


@pytest.fixture(scope="module")
def scores() -> tuple[object, object]:
    docs = load_corpus(CORPUS)
    preds = [[(e.type, e.start, e.end) for e in detect(d.text)] for d in docs]
    gold = [d.entities for d in docs]
    return score(gold, preds), score(gold, preds, overlap=True)


def test_corpus_is_well_formed() -> None:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 300
    domains = set()
    for line in lines:
        record = json.loads(line)
        assert set(record) == {"id", "domain", "text", "entities"}
        domains.add(record["domain"])
        for e in record["entities"]:
            assert e["type"] in ALL_TYPES
            span = record["text"][e["start"] : e["end"]]
            assert span and span == span.strip()
    assert domains == {"medical", "legal", "trades", "it"}


@pytest.mark.parametrize("type_", sorted(FLOOR))
def test_recall_floor(scores: tuple[object, object], type_: str) -> None:
    exact, overlap = scores
    structured = FLOOR[type_] >= 0.95
    result = exact if structured else overlap
    recall = result.recall(type_)  # type: ignore[attr-defined]
    precision = result.precision(type_)  # type: ignore[attr-defined]
    assert recall is not None and recall >= FLOOR[type_], (type_, recall)
    assert precision is not None and precision >= PRECISION_FLOOR, (type_, precision)
