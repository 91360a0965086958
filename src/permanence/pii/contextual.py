"""Recognizers of personal data read from the words around it: postal addresses, persons'
names (after a title or a cue such as "je m'appelle"), health terms (the lexicon).

Each takes a ``Doc`` and yields ``Span``s; ``detector.detect`` resolves their overlaps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from permanence.pii.entities import ADDRESS, HEALTH, PERSON, Doc, Span
from permanence.pii.lexicon import load_health_lexicon

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


def addresses(doc: Doc) -> Iterator[Span]:
    for m in _ADDRESS.finditer(doc.text):
        yield Span(ADDRESS, m.start(), m.end())


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


def persons(doc: Doc) -> Iterator[Span]:
    text = doc.text
    for m in _TITLED_PERSON.finditer(text):
        yield Span(PERSON, m.start("name"), m.end("name"))
    folded = doc.folded
    for cue in _PERSON_CUE.finditer(folded):
        pos = cue.end()
        found = _CUE_NAME.match(text, pos)
        if found is not None:
            yield Span(PERSON, found.start("name"), found.end("name"))
            continue
        if _STRONG_CUE_TAIL.search(cue.group()):
            low = _LOWER_NAME.match(text, pos)
            if low is not None and low.group("name").split()[0] not in _LOWER_NAME_STOP:
                yield Span(PERSON, low.start("name"), low.end("name"))


# --------------------------------------------------------------------------- health


def health(doc: Doc) -> Iterator[Span]:
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
        yield Span(HEALTH, s, e)
