"""Rule-based detection of French personal data in free text.

Each recognizer yields candidate spans; :func:`detect` then resolves overlaps by
preferring checksum-validated types, then longer spans, then the more specific type.
Everything is precompiled at import time; a call makes at most one regex pass per
recognizer over the text (plus one over its folded copy for the word-based ones).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import phonenumbers

from permanence.pii.checksums import (
    IBAN_LENGTHS,
    iban_valid,
    luhn_valid,
    nir_valid,
    siren_valid,
    siret_valid,
)
from permanence.pii.lexicon import load_health_lexicon
from permanence.pii.textfold import fold

__all__ = [
    "ALL_TYPES",
    "STRUCTURED_TYPES",
    "Entity",
    "detect",
    "mask",
    "replace_entities",
]

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


@dataclass(frozen=True, slots=True)
class Entity:
    """A detected span: ``text[start:end] == entity.text``."""

    type: str
    start: int
    end: int
    text: str

    def to_dict(self) -> dict[str, str | int]:
        return {"type": self.type, "start": self.start, "end": self.end, "text": self.text}


class _Span(NamedTuple):
    type: str
    start: int
    end: int


# Maximal runs of digits joined by single separators: national phone numbers, cards,
# SIREN and SIRET are all read from them. A run may follow a word's full stop ("Tél.06 12
# 34 56 78"), never a digit's comma or full stop (the decimals of "3,0612345678").
_DIGIT_RUN = re.compile(r"(?<![\w+\-/])(?<!\d[,.])\d+(?:[ .\-\u00a0\u202f]\d+)*(?![\w])")


class _Doc:
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


# --------------------------------------------------------------------------- phones

_SEP = r"[ .\-\u00a0\u202f]"
# +33 / 0033, optional (0) or a stray national 0. National numbers (0 + 9 digits) are
# read from digit runs instead, see _national_phones.
_FR_INTL_PHONE = re.compile(
    rf"(?<![\w+])(?:\+|00){_SEP}?33{_SEP}?(?:\(0\){_SEP}?|0)?[1-9](?:{_SEP}?\d){{8}}"
    rf"(?!\d)"
)
_FR_NATIONAL = re.compile(rf"0{_SEP}?[1-9](?:{_SEP}?\d){{8}}")
# Two numbers written "06 12 34 56 78/06 98 76 54 32": the second follows a slash, which
# digit runs do not cross (dates); it is read here, whole, or not at all.
_FR_NATIONAL_AFTER_SLASH = re.compile(rf"(?<=\d/){_FR_NATIONAL.pattern}(?![\w])")
# Other international numbers: shape here, validity checked with phonenumbers.
_INTL_PHONE = re.compile(
    rf"(?<![\w+])(?:\+|00)(?!33)[1-9]\d{{0,2}}(?:{_SEP}?\(?\d{{1,5}}\)?){{2,7}}(?!\d)"
)
_PHONE_GROUP_END = re.compile(rf"{_SEP}?\(?\d+\)?$")


def _intl_valid(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    if candidate.startswith("00"):
        digits = digits[2:]
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


def _national_phones(doc: _Doc) -> Iterator[_Span]:
    # A number must start a run of digit groups (or directly follow another number:
    # "0612345678 0698765432") and end on a group boundary, so that it is never a
    # slice of a longer identifier (SIRET, card, version or order number).
    for run_start, run in doc.digit_runs:
        pos = 0
        while (m := _FR_NATIONAL.match(run, pos)) is not None:
            if m.end() < len(run) and run[m.end()].isdigit():
                break
            yield _Span(PHONE, run_start + pos, run_start + m.end())
            pos = m.end() + 1


def _phones(doc: _Doc) -> Iterator[_Span]:
    text = doc.text
    yield from _national_phones(doc)
    if "/" in text:
        for m in _FR_NATIONAL_AFTER_SLASH.finditer(text):
            yield _Span(PHONE, m.start(), m.end())
    for m in _FR_INTL_PHONE.finditer(text):
        yield _Span(PHONE, m.start(), m.end())
    if "+" not in text and "00" not in text:
        return
    for m in _INTL_PHONE.finditer(text):
        candidate = m.group()
        # Greedy matching may swallow a following number ("... 0958 2 fois"):
        # drop trailing groups until the number validates.
        while len(re.sub(r"\D", "", candidate)) >= 7:
            if _intl_valid(candidate):
                yield _Span(PHONE, m.start(), m.start() + len(candidate))
                break
            candidate = _PHONE_GROUP_END.sub("", candidate)


# --------------------------------------------------------------------------- e-mails

_EMAIL = re.compile(
    r"(?<![\w.%+\-])[\w%+\-]+(?:\.[\w%+\-]+)*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w\-])"
)
# Dictated addresses in voicemail transcripts: "jean point dupont arobase orange point fr".
_SPOKEN_EMAIL = re.compile(
    r"(?<![\w])[a-z0-9]+(?:\s(?:point|tiret|underscore|tiret\sbas)\s[a-z0-9]+)*"
    r"\sarobase?\s[a-z0-9\-]+(?:\spoint\s[a-z0-9\-]+)*\spoint\s[a-z]{2,6}(?![\w])"
)


def _emails(doc: _Doc) -> Iterator[_Span]:
    if "@" in doc.text:
        for m in _EMAIL.finditer(doc.text):
            yield _Span(EMAIL, m.start(), m.end())
    if "arobas" in doc.folded:
        for m in _SPOKEN_EMAIL.finditer(doc.folded):
            yield _Span(EMAIL, m.start(), m.end())


# --------------------------------------------------------------------------- NIR

_NS = r"[ .\-\u00a0]?"
# The key is often set apart: "… 084 - 91", "… 084 / 91", "… 084 clé 91", "… 084 (91)".
_NIR_KEY = r"(?:\s*(?:[-/:]|cl[ée]\s*:?)\s*\d{2}|\s*\(\s*\d{2}\s*\)|" + _NS + r"\d" + _NS + r"\d)"
_NIR = re.compile(
    rf"(?<![\w])[12378](?:{_NS}\d){{4}}{_NS}(?:\d{_NS}\d|2{_NS}[ABab])"
    rf"(?:{_NS}\d){{6}}{_NIR_KEY}(?![\w])",
    re.IGNORECASE,
)
_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")
_NIR_KEY_WORD = re.compile(r"cl[ée]", re.IGNORECASE)


def _nirs(doc: _Doc) -> Iterator[_Span]:
    for m in _NIR.finditer(doc.text):
        if nir_valid(_NON_ALNUM.sub("", _NIR_KEY_WORD.sub("", m.group()))):
            yield _Span(NIR, m.start(), m.end())


# --------------------------------------------------------------------------- IBAN

_IBAN = re.compile(r"(?<![\w])[A-Za-z]{2}\d{2}(?:[ \-\u00a0]?[A-Za-z0-9]){11,30}")


def _ibans(doc: _Doc) -> Iterator[_Span]:
    text = doc.text
    pos = 0
    while (m := _IBAN.search(text, pos)) is not None:
        pos = m.start() + 1
        # Map each alphanumeric character back to its offset, then cut at the
        # country's registered length (the regex may run into the next word).
        positions = [m.start() + i for i, ch in enumerate(m.group()) if ch.isalnum()]
        chars = "".join(text[p] for p in positions).upper()
        length = IBAN_LENGTHS.get(chars[:2])
        lengths = [length] if length else range(min(len(chars), 34), 14, -1)
        for n in lengths:
            if n > len(chars):
                continue
            end = positions[n - 1] + 1
            if end < len(text) and text[end].isalnum():
                continue  # would stop in the middle of a word
            if iban_valid(chars[:n]):
                yield _Span(IBAN, m.start(), end)
                pos = end
                break


# --------------------------------------------------------------- cards, SIREN, SIRET

_SIREN_CONTEXT = re.compile(
    r"\b(?:siren|siret|rcs|r\.c\.s|tva|societe|entreprise|sas|sarl|eurl|immatricul\w*|kbis)\b"
)
_CARD_CONTEXT = re.compile(r"\b(?:carte|cb|visa|mastercard|amex|paiement|credit)\b")
# Words that announce an internal reference rather than a company or a card.
_REFERENCE_CONTEXT = re.compile(
    r"\b(?:commande|facture|colis|suivi|ticket|dossier|reference|ref|contrat|sinistre|"
    r"devis|bon|client|abonne|compteur|pdl|prm)\b"
)


def _context(doc: _Doc, start: int, end: int, pattern: re.Pattern[str], before: int) -> bool:
    folded = doc.folded
    return pattern.search(folded, max(0, start - before), start) is not None or (
        pattern.search(folded, end, min(len(folded), end + 15)) is not None
    )


def _classify_digits(doc: _Doc, digits: str, start: int, end: int) -> str | None:
    n = len(digits)
    if n == 14 and siret_valid(digits):
        if luhn_valid(digits) and _context(doc, start, end, _CARD_CONTEXT, 40):
            return CARD
        if _context(doc, start, end, _REFERENCE_CONTEXT, 30) and not _context(
            doc, start, end, _SIREN_CONTEXT, 40
        ):
            return None
        return SIRET
    if 13 <= n <= 19 and n != 14 and digits[0] in "23456" and luhn_valid(digits):
        return CARD
    if n == 9 and siren_valid(digits) and _context(doc, start, end, _SIREN_CONTEXT, 40):
        return SIREN
    return None


def _numbers(doc: _Doc) -> Iterator[_Span]:
    for run_start, run in doc.digit_runs:
        if len(run) < 9:
            continue
        bounds = [i for i, ch in enumerate(run) if not ch.isdigit()] + [len(run)]
        pos = 0
        # Identifiers start the run or directly follow one another ("card1 card2");
        # starting inside a run would find Luhn-valid slices of longer numbers.
        while pos < len(run) and (found := _number_at(doc, run_start, run, pos, bounds)):
            yield found
            pos = found.end - run_start + 1


def _number_at(doc: _Doc, run_start: int, run: str, pos: int, bounds: list[int]) -> _Span | None:
    # Longest piece first, cut at separators: a card may be followed by its expiry
    # date, a SIRET by a postcode.
    for cut in reversed(bounds):
        if cut <= pos:
            break
        digits = "".join(ch for ch in run[pos:cut] if ch.isdigit())
        if len(digits) < 9:
            break
        if len(digits) > 19:
            continue
        kind = _classify_digits(doc, digits, run_start + pos, run_start + cut)
        if kind is not None:
            return _Span(kind, run_start + pos, run_start + cut)
    return None


# --------------------------------------------------------------------------- dates

_MONTHS = (
    r"(?:janvier|fevrier|mars|avril|mai|juin|juillet|aout|septembre|octobre|novembre|"
    r"decembre|janv|fevr?|avr|juil|sept?|oct|nov|dec)\.?"
)
_DOB = re.compile(
    r"(?:\bne(?:\(e\)|e)?s?(?:\s+(?:a|au|en)\s+[^\d,.;:\n]{1,30}?)?\s+le"
    r"|\bdate\s+de\s+naiss(?:ance|\.)?|\bd\.?d\.?n\b\.?|\bnaissance\b|\bne(?:\(e\)|e)?\s+en)"
    r"\s*[:=\-]?\s*(?:le\s+)?"
    rf"(?P<date>(?:1er|[0-3]?\d)\s+{_MONTHS}\s+(?:19|20)\d\d"
    r"|[0-3]?\d\s?[/.\-]\s?[01]?\d\s?[/.\-]\s?(?:(?:19|20)\d\d|\d\d)"
    rf"|{_MONTHS}\s+(?:19|20)\d\d"
    r"|(?:19|20)\d\d)(?![\w/])"
)


def _dates_of_birth(doc: _Doc) -> Iterator[_Span]:
    folded = doc.folded
    if "n" not in folded:
        return
    for m in _DOB.finditer(folded):
        yield _Span(DATE_OF_BIRTH, m.start("date"), m.end("date"))


# --------------------------------------------------------------------------- addresses

_UP = "A-ZÀ-ÖØ-Ý"
_LOW = "a-zß-öø-ÿœ"
_STREET_TYPES = (
    r"rue|avenue|av\.?|bd\.?|boulevard|bld|chemin|ch\.|impasse|imp\.|all[ée]e|place|pl\.|"
    r"route|rte|quai|cours|square|passage|r[ée]sidence|lotissement|lieu-dit|chauss[ée]e|"
    r"faubourg|fg|rond-point|voie|sentier|cit[ée]|hameau|esplanade|promenade|parvis|villa|"
    r"ruelle|traverse|mont[ée]e|grande[ -]rue|domaine|clos|venelle|sente|square"
)
# Street types for which a lower-case name is accepted (dictated voicemail transcripts);
# others ("place", "cours") are too common as nouns: "1 place de libre".
_STREET_TYPES_LOWER = r"rue|avenue|boulevard|bd|impasse|all[ée]e|quai"
_PARTICLE = r"(?:(?:de|du|des|la|le|les|aux|au|sur|sous|en|et|à|lès|saint|sainte)\s+|[dl]['’]\s?)"
_MONTH_NAMES = (
    r"janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|novembre|décembre"
)
_CAP_WORD = rf"(?:[{_UP}][{_LOW}{_UP}'’\-]*|\d{{1,4}}(?:er|e)?|(?:{_MONTH_NAMES})\b)"
_STOP = (
    r"(?:pour|demain|ce|cet|cette|il|elle|on|je|nous|vous|merci|et|avant|après|apres|depuis|"
    r"chez|mais|car|donc|qui|que|qu|ou|où|à|a|au|aux|le|la|les|un|une|des|de|du|en|est|"
    r"sont|svp|rappeler|rappelle|rappelez|appeler|appelez|ne|pas|plus|dès|des|vers|entre|avec|"
    r"sans|vite|urgent|merci)\b"
)
_LOW_WORD = rf"(?!{_STOP})[{_LOW}][{_LOW}'’\-]+"
_LOW_PARTICLE = r"(?:(?:de|du|des|la|le|les)\s+|[dl]['’]\s?)"
_NUMBER = r"\d{1,4}(?:\s?(?:bis|ter|quater|[A-Da-d])\b)?(?:\s?[-/]\s?\d{1,4})?"
_POSTCODE_CITY = (
    rf"(?:\s*,?\s*(?:\d{{5}}|\d{{2}}\s\d{{3}})\s+"
    rf"[{_UP}][{_LOW}{_UP}'’\-]*(?:[\s\-]+(?:(?:sur|sous|en|le|la|les|de|du|des|lès)[\s\-]+)?"
    rf"[{_UP}][{_LOW}{_UP}'’\-]*){{0,3}}"
    rf"(?:\s+(?:\d{{1,2}}(?:e|er|ème)\b|cedex(?:\s\d{{1,2}})?|CEDEX(?:\s\d{{1,2}})?))?"
    rf"|\s*,?\s*\d{{5}}\s+(?!{_STOP})[{_LOW}][{_LOW}\-]+)?"
)
_ADDRESS = re.compile(
    rf"(?<![\w,.])(?:{_NUMBER}),?\s+"
    rf"(?:(?i:{_STREET_TYPES})\s+{_PARTICLE}*{_CAP_WORD}"
    rf"(?:(?:\s+{_PARTICLE}*|\s*-\s*){_CAP_WORD}){{0,5}}"
    rf"|(?:{_STREET_TYPES_LOWER})\s+{_LOW_PARTICLE}*{_LOW_WORD}"
    rf"(?:\s+{_LOW_PARTICLE}*{_LOW_WORD}){{0,2}})"
    rf"{_POSTCODE_CITY}(?![\w])"
)


def _addresses(doc: _Doc) -> Iterator[_Span]:
    for m in _ADDRESS.finditer(doc.text):
        yield _Span(ADDRESS, m.start(), m.end())


# --------------------------------------------------------------------------- persons

_TITLE = (
    r"(?:M\.|MM\.|Mr\.?|Mme\.?|Mmes|Mlle\.?|Melle|Madame|Monsieur|Mademoiselle|Dr\.?|"
    r"Docteur|Pr\.?|Professeur|Me|Ma[îi]tre|MME|MLLE|MONSIEUR|MADAME|DR\.?)"
)
# Capitalised words that follow a title without being a name.
_NOT_NAMES = (
    rf"(?:(?:Le|La|Les|L)(?!\s+[{_UP}])|Un|Une|Bonjour|Merci|Directeur|Directrice|Maire|Président|Présidente|"
    r"Juge|Procureur|Docteur|Madame|Monsieur|Votre|Notre|Son|Sa|Ses|Mon|Ma|Mes|Au|Aux|Du|De|"
    # Acronyms that follow role nouns ("le client : SIREN ...").
    r"SIREN|SIRET|IBAN|RIB|NIR|CB|SMS|RDV|TVA|SAV|PDF|VPN|TTC|HT|RCS)\b"
)
_NAME_WORD = (
    rf"(?!{_NOT_NAMES}(?![-'’]))"
    rf"(?:(?:[Dd]['’]|[Oo]['’]|[Nn]['’]|Mc|Mac)?[{_UP}][{_LOW}]+|[{_UP}]{{2,}})"
    rf"(?:-[{_UP}](?:[{_LOW}]+|[{_UP}]+))*"
)
_NAME_PARTICLE = r"(?:(?:de|du|des|van|von|der|den|del|della|da|di|dos|ben|bin|el|le|la)\s+)"
_NAME = rf"(?:{_NAME_PARTICLE}?{_NAME_WORD}(?:\s+{_NAME_PARTICLE}?{_NAME_WORD}){{0,3}})"
_TITLED_PERSON = re.compile(rf"(?<![\w])(?:{_TITLE})\s+(?P<name>{_NAME})(?![\w])")
# Cues are matched on folded text; the name right after them on the original text.
_PERSON_CUE = re.compile(
    r"(?:\bje\s+m'appelle|\bmon\s+nom\s+(?:est|c'est)|\bmon\s+nom\s*:|\bde\s+la\s+part\s+de"
    r"|\bs'appelle|\bnom(?:\s+de\s+famille)?\s*:|\bprenom\s*:|\bpatiente?\s*:|\bcliente?\s*:"
    r"|\bcontact\s*:|\bappelant\s*:|\binterlocut(?:eur|rice)\s*:|\bdemandeur\s*:"
    r"|\bmon\s+prenom\s+(?:est|c'est)|\bc'est\s+de\s+la\s+part\s+de|\bau\s+nom\s+de"
    r"|\bpour\s+le\s+compte\s+de"
    # Role nouns directly followed by a capitalised name: "le client Dupont".
    r"|\b(?:cliente?|patiente?|gerante?|huissier|syndic|sous-traitant|technicien(?:ne)?"
    r"|electricien(?:ne)?|plombier|locataire|proprietaire|maman|papa|mere|pere|fils|fille"
    r"|mari|epouse|confrere|consœur|collegue|petite?|recrue|stagiaire|voisine?"
    r"|interlocut(?:eur|rice))\s*:?"
    r")\s*"
)
_CUE_NAME = re.compile(rf"(?:{_TITLE}\s+)?(?P<name>{_NAME})(?![\w])")
# Dictated transcripts are often lower-case: after a strong cue accept one or two words.
_STRONG_CUE_TAIL = re.compile(r"(?:appelle|nom\s+est|nom\s+c'est|nom\s*:|prenom\s*:)\s*$")
_LOWER_NAME = re.compile(rf"(?P<name>{_LOW_WORD}(?:\s+{_LOW_WORD})?)(?![\w])")
_LOWER_NAME_STOP = frozenset(
    [
        "bien",
        "tres",
        "vraiment",
        "desole",
        "desolee",
        "en",
        "au",
        "la",
        "le",
        "a",
        "plombier",
        "electricien",
        "avocat",
        "docteur",
        "madame",
        "monsieur",
        "appel",
        "rappel",
        "urgent",
        "urgence",
        "bonjour",
    ]
)


def _persons(doc: _Doc) -> Iterator[_Span]:
    text = doc.text
    for m in _TITLED_PERSON.finditer(text):
        yield _Span(PERSON, m.start("name"), m.end("name"))
    folded = doc.folded
    for cue in _PERSON_CUE.finditer(folded):
        pos = cue.end()
        found = _CUE_NAME.match(text, pos)
        if found is not None:
            yield _Span(PERSON, found.start("name"), found.end("name"))
            continue
        if _STRONG_CUE_TAIL.search(cue.group()):
            low = _LOWER_NAME.match(text, pos)
            if low is not None and low.group("name").split()[0] not in _LOWER_NAME_STOP:
                yield _Span(PERSON, low.start("name"), low.end("name"))


# --------------------------------------------------------------------------- health


def _health(doc: _Doc) -> Iterator[_Span]:
    lexicon = load_health_lexicon()
    folded = doc.folded
    excluded = (
        [(m.start(), m.end()) for m in lexicon.exclusions.finditer(folded)]
        if lexicon.exclusions is not None
        else []
    )
    for m in lexicon.pattern.finditer(folded):
        s, e = m.start(), m.end()
        if any(xs <= s and e <= xe for xs, xe in excluded):
            continue
        yield _Span(HEALTH, s, e)


# --------------------------------------------------------------------------- engine

_Recognizer = Callable[[_Doc], Iterator[_Span]]
# Which recognizers to run for each requested type.
_RECOGNIZERS: dict[str, _Recognizer] = {
    PHONE: _phones,
    EMAIL: _emails,
    NIR: _nirs,
    IBAN: _ibans,
    CARD: _numbers,
    SIREN: _numbers,
    SIRET: _numbers,
    DATE_OF_BIRTH: _dates_of_birth,
    ADDRESS: _addresses,
    PERSON: _persons,
    HEALTH: _health,
}
_NEEDS_DIGIT = frozenset({_phones, _nirs, _ibans, _numbers, _dates_of_birth, _addresses})


def _validate_types(types: Collection[str] | None) -> frozenset[str]:
    if types is None:
        return frozenset(ALL_TYPES)
    wanted = frozenset(types)
    unknown = wanted - frozenset(ALL_TYPES)
    if unknown:
        raise ValueError(f"unknown entity type(s): {', '.join(sorted(unknown))}")
    return wanted


def _resolve(spans: list[_Span]) -> list[_Span]:
    """Greedy non-overlapping selection: rank, then length, then specificity."""
    ordered = sorted(
        set(spans),
        key=lambda s: (-_RANK[s.type], s.start - s.end, _SPECIFICITY[s.type], s.start),
    )
    kept: list[_Span] = []
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
    doc = _Doc(text)
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
