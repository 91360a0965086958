"""Recognizers of identifiers read by their shape, most with a checksum: telephone numbers,
e-mail addresses, NIR, IBAN, payment cards, SIREN and SIRET, dates of birth.

Each takes a ``Doc`` and yields ``Span``s; ``detector.detect`` resolves their overlaps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import phonenumbers

from permanence.pii.checksums import (
    IBAN_LENGTHS,
    iban_valid,
    luhn_valid,
    nir_valid,
    siren_valid,
    siret_valid,
)
from permanence.pii.entities import (
    CARD,
    DATE_OF_BIRTH,
    EMAIL,
    IBAN,
    NIR,
    PHONE,
    SIREN,
    SIRET,
    Doc,
    Span,
)

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


def _national_phones(doc: Doc) -> Iterator[Span]:
    # A number must start a run of digit groups (or directly follow another number:
    # "0612345678 0698765432") and end on a group boundary, so that it is never a
    # slice of a longer identifier (SIRET, card, version or order number).
    for run_start, run in doc.digit_runs:
        pos = 0
        while (m := _FR_NATIONAL.match(run, pos)) is not None:
            if m.end() < len(run) and run[m.end()].isdigit():
                break
            yield Span(PHONE, run_start + pos, run_start + m.end())
            pos = m.end() + 1


def phones(doc: Doc) -> Iterator[Span]:
    text = doc.text
    yield from _national_phones(doc)
    if "/" in text:
        for m in _FR_NATIONAL_AFTER_SLASH.finditer(text):
            yield Span(PHONE, m.start(), m.end())
    for m in _FR_INTL_PHONE.finditer(text):
        yield Span(PHONE, m.start(), m.end())
    if "+" not in text and "00" not in text:
        return
    for m in _INTL_PHONE.finditer(text):
        candidate = m.group()
        # Greedy matching may swallow a following number ("... 0958 2 fois"):
        # drop trailing groups until the number validates.
        while len(re.sub(r"\D", "", candidate)) >= 7:
            if _intl_valid(candidate):
                yield Span(PHONE, m.start(), m.start() + len(candidate))
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


def emails(doc: Doc) -> Iterator[Span]:
    if "@" in doc.text:
        for m in _EMAIL.finditer(doc.text):
            yield Span(EMAIL, m.start(), m.end())
    if "arobas" in doc.folded:
        for m in _SPOKEN_EMAIL.finditer(doc.folded):
            yield Span(EMAIL, m.start(), m.end())


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


def nirs(doc: Doc) -> Iterator[Span]:
    for m in _NIR.finditer(doc.text):
        if nir_valid(_NON_ALNUM.sub("", _NIR_KEY_WORD.sub("", m.group()))):
            yield Span(NIR, m.start(), m.end())


# --------------------------------------------------------------------------- IBAN

_IBAN = re.compile(r"(?<![\w])[A-Za-z]{2}\d{2}(?:[ \-\u00a0]?[A-Za-z0-9]){11,30}")


def ibans(doc: Doc) -> Iterator[Span]:
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
                yield Span(IBAN, m.start(), end)
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


def _context(doc: Doc, start: int, end: int, pattern: re.Pattern[str], before: int) -> bool:
    folded = doc.folded
    return pattern.search(folded, max(0, start - before), start) is not None or (
        pattern.search(folded, end, min(len(folded), end + 15)) is not None
    )


def _classify_digits(doc: Doc, digits: str, start: int, end: int) -> str | None:
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


def numbers(doc: Doc) -> Iterator[Span]:
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


def _number_at(doc: Doc, run_start: int, run: str, pos: int, bounds: list[int]) -> Span | None:
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
            return Span(kind, run_start + pos, run_start + cut)
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


def dates_of_birth(doc: Doc) -> Iterator[Span]:
    folded = doc.folded
    if "n" not in folded:
        return
    for m in _DOB.finditer(folded):
        yield Span(DATE_OF_BIRTH, m.start("date"), m.end("date"))
