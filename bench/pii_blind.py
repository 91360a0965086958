"""Measure permanence.pii on the blind held-out notes (corpus/pii-fr/blind.txt).

    python bench/pii_blind.py            # per-type figures, health split by lexicon
    python bench/pii_blind.py --misses   # also every missed and every spurious span

The notes were written without reading the lexicon, the corpus generator or the rules, and
are never tuned on: this is the figure to quote, not a gate (nothing fails on it). HEALTH
spans are counted twice more, apart: those containing a lexicon term, and those that do not
(the lexicon cannot find what it does not list; that recall measures the lexicon's reach).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from permanence.pii import ALL_TYPES, detect
from permanence.pii.evaluation import Document, Span, score
from permanence.pii.lexicon import load_health_lexicon
from permanence.pii.textfold import fold

BLIND = Path(__file__).resolve().parent.parent / "corpus" / "pii-fr" / "blind.txt"
_MARK = re.compile(r"\[\[([A-Z_]+):([^\]]+)\]\]")


def parse_note(marked: str) -> tuple[str, tuple[Span, ...]]:
    """The plain text of a marked-up note and its entities, ``[[TYPE:text]]`` → (type, s, e)."""
    text, spans, pos = [], [], 0
    length = 0
    for m in _MARK.finditer(marked):
        before = marked[pos : m.start()]
        text.append(before)
        length += len(before)
        kind, value = m.group(1), m.group(2)
        if kind not in ALL_TYPES:
            raise ValueError(f"unknown type {kind!r}")
        spans.append((kind, length, length + len(value)))
        text.append(value)
        length += len(value)
        pos = m.end()
    text.append(marked[pos:])
    plain = "".join(text)
    if "[[" in plain or "]]" in plain:
        raise ValueError("unbalanced markup")
    return plain, tuple(spans)


def load_blind(path: Path = BLIND) -> list[Document]:
    docs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        note_id, domain, marked = line.split("\t")
        text, spans = parse_note(marked)
        docs.append(Document(note_id, domain, text, spans))
    return docs


def in_lexicon(term: str) -> bool:
    """Whether some term of the health lexicon occurs in ``term``."""
    return load_health_lexicon().pattern.search(fold(term)) is not None


def _fmt(x: float | None) -> str:
    return "  –  " if x is None else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--misses", action="store_true", help="list missed and spurious spans")
    args = parser.parse_args(argv)
    docs = load_blind()
    preds = [[(e.type, e.start, e.end) for e in detect(d.text)] for d in docs]
    exact = score([d.entities for d in docs], preds)
    overlap = score([d.entities for d in docs], preds, overlap=True)
    print(f"{len(docs)} notes, {sum(len(d.entities) for d in docs)} entities")
    print(f"{'type':24} {'n':>4} {'P exact':>8} {'R exact':>8} {'P overlap':>10} {'R overlap':>10}")
    for t in ALL_TYPES:
        if not exact.gold.get(t) and not exact.pred.get(t):
            continue
        print(
            f"{t:24} {exact.gold.get(t, 0):4} {_fmt(exact.precision(t)):>8} "
            f"{_fmt(exact.recall(t)):>8} {_fmt(overlap.precision(t)):>10} "
            f"{_fmt(overlap.recall(t)):>10}"
        )
    # HEALTH apart: gold spans with / without a lexicon term (recall only: a prediction has
    # no such side).
    for label, keep in (("HEALTH in lexicon", True), ("HEALTH outside lexicon", False)):
        golds = [
            [g for g in d.entities if g[0] == "HEALTH" and in_lexicon(d.text[g[1] : g[2]]) == keep]
            for d in docs
        ]
        part = score(golds, [[p for p in ps if p[0] == "HEALTH"] for ps in preds], overlap=True)
        n = part.gold.get("HEALTH", 0)
        terms = sorted({d.text[g[1] : g[2]] for d, gs in zip(docs, golds, strict=True) for g in gs})
        print(f"{label:24} {n:4} {'':>8} {'':>8} {'':>10} {_fmt(part.recall('HEALTH')):>10}")
        if not keep:
            print(f"    outside the lexicon: {', '.join(terms)}")
    if args.misses:
        for d, ps in zip(docs, preds, strict=True):
            for g in d.entities:
                if not any(p[0] == g[0] and p[1] < g[2] and g[1] < p[2] for p in ps):
                    print(f"missed   {d.id} {g[0]:14} {d.text[g[1] : g[2]]!r}")
            for p in ps:
                if not any(p[0] == g[0] and p[1] < g[2] and g[1] < p[2] for g in d.entities):
                    print(f"spurious {d.id} {p[0]:14} {d.text[p[1] : p[2]]!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
