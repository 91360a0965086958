"""Scoring helpers for the labelled corpus (used by ``bench/pii_eval.py`` and the tests)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Document", "Scores", "Span", "load_corpus", "score"]

Span = tuple[str, int, int]  # (type, start, end)


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    domain: str
    text: str
    entities: tuple[Span, ...]


@dataclass(slots=True)
class Scores:
    """Per-type counts; ``tp_gold`` counts found gold spans, ``tp_pred`` correct predictions.

    With exact matching both are the same number; with overlap matching one predicted
    span may cover two gold spans (or the reverse), so recall and precision use their
    own numerator.
    """

    tp_gold: dict[str, int] = field(default_factory=dict)
    tp_pred: dict[str, int] = field(default_factory=dict)
    gold: dict[str, int] = field(default_factory=dict)
    pred: dict[str, int] = field(default_factory=dict)

    def precision(self, t: str) -> float | None:
        n = self.pred.get(t, 0)
        return self.tp_pred.get(t, 0) / n if n else None

    def recall(self, t: str) -> float | None:
        n = self.gold.get(t, 0)
        return self.tp_gold.get(t, 0) / n if n else None

    def f1(self, t: str) -> float | None:
        p, r = self.precision(t), self.recall(t)
        if p is None or r is None or p + r == 0:
            return None if p is None or r is None else 0.0
        return 2 * p * r / (p + r)


def load_corpus(path: str | Path) -> list[Document]:
    docs: list[Document] = []
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            raw: dict[str, Any] = json.loads(line)
            spans = tuple((e["type"], e["start"], e["end"]) for e in raw["entities"])
            docs.append(Document(raw["id"], raw["domain"], raw["text"], spans))
    return docs


def _inc(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


def score(
    gold_docs: Sequence[Iterable[Span]],
    pred_docs: Sequence[Iterable[Span]],
    overlap: bool = False,
) -> Scores:
    """Compare predicted spans to gold spans, document by document, same type only."""
    result = Scores()
    for gold_it, pred_it in zip(gold_docs, pred_docs, strict=True):
        gold, pred = list(gold_it), list(pred_it)

        def match(a: Span, b: Span) -> bool:
            if a[0] != b[0]:
                return False
            if overlap:
                return a[1] < b[2] and b[1] < a[2]
            return a[1] == b[1] and a[2] == b[2]

        for g in gold:
            _inc(result.gold, g[0])
            if any(match(g, p) for p in pred):
                _inc(result.tp_gold, g[0])
        for p in pred:
            _inc(result.pred, p[0])
            if any(match(g, p) for g in gold):
                _inc(result.tp_pred, p[0])
    return result
