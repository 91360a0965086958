"""Health lexicon loading and compilation into a single trie-shaped regex.

The lexicon (``health_lexicon.txt``) is plain text so that non-developers can review
it; see the header of that file for the syntax. Terms are folded with
:func:`permanence.pii.textfold.fold`, expanded with plural forms, and merged into a
prefix trie that is emitted as one regex: Python's ``re`` then walks the shared
prefixes once instead of trying hundreds of alternatives at every position.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from permanence.pii.textfold import fold

__all__ = ["Lexicon", "compile_terms", "load_health_lexicon", "parse_lexicon"]

# Atoms that stand for a separator class rather than a literal character.
_SEP = "\x00"  # between words: one or more spaces/hyphens
_OPT_SEP = "\x01"  # inside a hyphenated word: optional space/hyphen
_APOS = "\x02"  # apostrophe, optionally followed by a space
_ATOM_RE = {
    _SEP: r"[\s\-]+",
    _OPT_SEP: r"[\s\-]?",
    _APOS: r"'\s?",
}

# Function words are never pluralised ("troubles du sommeil", not "troubles dus").
_FUNCTION_WORDS = frozenset(
    [
        "a",
        "au",
        "aux",
        "de",
        "du",
        "des",
        "d",
        "la",
        "le",
        "les",
        "l",
        "en",
        "et",
        "sous",
        "sur",
        "dans",
        "avec",
        "par",
        "pour",
        "in",
        "vitro",
    ]
)
_TERM_END = "_END_"


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Compiled lexicon: ``pattern`` matches terms, ``exclusions`` vetoes matches."""

    pattern: re.Pattern[str]
    exclusions: re.Pattern[str] | None
    size: int


def parse_lexicon(lines: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split lexicon lines into (terms, exclusions), skipping comments and blanks."""
    terms: list[str] = []
    exclusions: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            exclusions.append(line[1:].strip())
        else:
            terms.append(line)
    return terms, exclusions


def _pluralise(word: str) -> str:
    if word.endswith(("s", "x", "z")):
        return word
    if word.endswith("al"):
        return word[:-2] + "aux"
    if word.endswith(("eau", "eu")):
        return word + "x"
    return word + "s"


def _can_pluralise(original_word: str, folded_word: str) -> bool:
    # Acronyms (IRM, AVC) and proper nouns (Crohn, Alzheimer) keep their form.
    if original_word[:1].isupper() or any(ch.isdigit() for ch in folded_word):
        return False
    return folded_word not in _FUNCTION_WORDS and len(folded_word) > 2


def _variants(term: str) -> set[tuple[str, ...]]:
    """Word tuples for a term: as written, all words plural, first word plural."""
    original_words = term.split()
    words = fold(term).split()
    plural_all = tuple(
        _pluralise(w) if _can_pluralise(o, w) else w
        for o, w in zip(original_words, words, strict=True)
    )
    first = (
        _pluralise(words[0]) if _can_pluralise(original_words[0], words[0]) else words[0],
        *words[1:],
    )
    return {tuple(words), plural_all, first}


def _atoms(words: tuple[str, ...]) -> list[str]:
    atoms: list[str] = []
    for i, word in enumerate(words):
        if i:
            # "d'" and "l'" attach to the next word, which already carries the apostrophe.
            atoms.append(_SEP if not atoms or atoms[-1] != _APOS else "")
        for ch in word:
            if ch == "-":
                atoms.append(_OPT_SEP)
            elif ch == "'":
                atoms.append(_APOS)
            else:
                atoms.append(ch)
    return [a for a in atoms if a]


def _split_apostrophes(term: str) -> str:
    # "crise d'épilepsie" -> words "crise", "d'", "épilepsie" so that the elided
    # article is never pluralised and the apostrophe accepts a following space.
    return re.sub(r"(['’])\s*", r"\1 ", term)


def _trie_regex(node: dict[str, object]) -> str:
    alternatives: list[str] = []
    optional = False
    for atom in sorted(node):
        if atom == _TERM_END:
            optional = True
            continue
        child = node[atom]
        assert isinstance(child, dict)
        alternatives.append(_ATOM_RE.get(atom, re.escape(atom)) + _trie_regex(child))
    if not alternatives:
        return ""
    body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
    if optional:
        # Greedy optional group: the longer term is tried first, the shorter one
        # remains available if the longer one fails the trailing word boundary.
        return "(?:" + body + ")?"
    return body


def compile_terms(terms: Iterable[str]) -> tuple[re.Pattern[str], int]:
    """Compile terms into one boundary-delimited regex over folded text."""
    trie: dict[str, object] = {}
    count = 0
    for term in terms:
        count += 1
        for words in _variants(_split_apostrophes(term)):
            node = trie
            for atom in _atoms(words):
                nxt = node.setdefault(atom, {})
                assert isinstance(nxt, dict)
                node = nxt
            node[_TERM_END] = {}
    body = _trie_regex(trie)
    return re.compile(r"(?<![\w])(?:" + body + r")(?![\w])"), count


def _fold_apostrophe_term(term: str) -> str:
    return term.replace("’", "'")


@lru_cache(maxsize=1)
def load_health_lexicon() -> Lexicon:
    """Load and compile the packaged health lexicon (cached: compiled once)."""
    text = resources.files("permanence.pii").joinpath("health_lexicon.txt").read_text("utf-8")
    terms, exclusions = parse_lexicon(text.splitlines())
    pattern, size = compile_terms(_fold_apostrophe_term(t) for t in terms)
    excl_pattern = compile_terms(exclusions)[0] if exclusions else None
    return Lexicon(pattern=pattern, exclusions=excl_pattern, size=size)
