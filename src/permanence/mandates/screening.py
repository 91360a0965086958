"""Screening free text against the purpose: personal data the purpose does not declare.

An operator's note may carry more than the purpose allows — a social security number, a health
detail in a plumber's message, a card number. Before a record is saved, free-text fields are run
through the detector; what the purpose does not declare is reported with its type and offsets
(never its text), so the operator can remove it. Some types are refused outright; the others
need the operator's explicit confirmation.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from permanence.crypto.normalize import phone_e164
from permanence.errors import ValidationFailed
from permanence.mandates.base import FieldCategory, FieldType
from permanence.mandates.mandate import Mandate
from permanence.mandates.purposes import Purpose
from permanence.pii import undeclared

# Never stored from free text: the NIR only for purposes listed in décret 2019-341 (none
# here), card numbers never (PCI DSS), health data only under an Art. 9 basis.
ALWAYS_REFUSED = frozenset({"NIR", "CARD"})
# Identifiers of businesses, not of the caller: never worth a warning.
NEUTRAL = frozenset({"SIREN", "SIRET"})


# What each detector type is called when a finding is reported (never the text found).
# The pages say it in the viewer's language (web/pages/findings.py); this is the API's.
KIND_EN: dict[str, str] = {
    "NIR": "a social security number",
    "CARD": "a payment card number",
    "IBAN": "a bank account number (IBAN)",
    "PHONE": "a phone number",
    "EMAIL": "an e-mail address",
    "DATE_OF_BIRTH": "a date of birth",
    "ADDRESS": "a postal address",
    "PERSON": "a person's name",
    "HEALTH": "a health detail",
    "SIREN": "a company number (SIREN)",
    "SIRET": "an establishment number (SIRET)",
    "SPECIAL_CATEGORY": "a special category of data (Art. 9: beliefs, union membership…)",
    "OFFENCE": "offence data (Art. 10: custody, criminal record…)",
}


@dataclass(frozen=True)
class Finding:
    field: str
    type: str
    start: int
    end: int
    refused: bool
    # The field's labels from the mandate (its author's words, never the caller's).
    label_fr: str = ""
    label_en: str = ""
    # A phone number or e-mail address the purpose declares, but not the form's own one.
    another: bool = False

    def message(self, purpose: str) -> str:
        """In words, for the API and the logs: what was found where (never the text)."""
        what = (
            f"purpose '{purpose}' has no basis to keep it: it must be removed"
            if self.refused
            else f"purpose '{purpose}' does not declare it: remove it, or confirm it is needed"
        )
        kind = KIND_EN.get(self.type, "personal data")
        if self.another:
            kind = f"{kind} other than the form's own"
        label = self.label_en or self.field
        return (
            f"{kind} was found in the field '{label}' (characters {self.start}-{self.end}); {what}"
        )


def allowed_types(purpose: Purpose) -> frozenset[str]:
    """Detector types the purpose's declared fields already cover."""
    allowed = set(NEUTRAL)
    for field in purpose.resolved_fields:
        if field.type == FieldType.PHONE:
            allowed.add("PHONE")
        elif field.type == FieldType.EMAIL:
            allowed.add("EMAIL")
        elif field.category == FieldCategory.IDENTITY and field.type == FieldType.TEXT:
            allowed.add("PERSON")
        elif field.category == FieldCategory.IDENTITY and field.type == FieldType.DATE:
            allowed.add("DATE_OF_BIRTH")
        elif field.category == FieldCategory.CONTACT and field.type == FieldType.TEXT:
            allowed.add("ADDRESS")
        elif field.category == FieldCategory.FINANCIAL:
            allowed.add("IBAN")
    if purpose.special_category_basis is not None:
        allowed.add("HEALTH")
    return frozenset(allowed)


# The other Art. 9 categories and Art. 10 offence data, as callers say them (matched on the
# text folded to lower case without accents; offsets are the original text's).
SPECIAL = "SPECIAL_CATEGORY"  # Art. 9(1) other than health
OFFENCE = "OFFENCE"  # Art. 10
_TERMS: tuple[tuple[str, str], ...] = (
    (SPECIAL, r"(?:musulman|catholique|protestant|juif|juive|bouddhiste|mosquee|synagogue"
     r"|pratiquant|ramadan|confession religieuse|croyances? religieuses?)e?s?"),
    (SPECIAL, r"syndique[e]?s?|syndicat|delegue[e]? syndical|cgt|cfdt|force ouvriere"),
    (SPECIAL, r"parti politique|militant[e]? (?:politique|du parti)|opinions? politiques?"),
    (SPECIAL, r"homosexuel(?:le)?s?|bisexuel(?:le)?s?|lesbienne|orientation sexuelle"
     r"|vie sexuelle"),
    (SPECIAL, r"origine (?:ethnique|raciale)|donnees? genetiques?|test genetique"
     r"|empreintes? digitales?"),
    (OFFENCE, r"garde a vue|casier judiciaire|condamne[e]?s?|condamnation|mis[e]? en examen"
     r"|incarcere[e]?s?|detention provisoire|infraction penale|proces-verbal|comparution"
     r"|plainte (?:penale|deposee|contre)|sursis"),
)  # fmt: skip
_TERM_RE = tuple((t, re.compile(rf"(?<![\w]){p}(?![\w])")) for t, p in _TERMS)


def _fold(text: str) -> str:
    """Lower case without accents, one character for one (offsets are kept)."""
    return "".join(unicodedata.normalize("NFD", ch)[0].lower() if ch else ch for ch in text)


def sensitive_terms(text: str) -> Iterator[tuple[str, int, int]]:
    folded = _fold(text)
    for kind, pattern in _TERM_RE:
        for m in pattern.finditer(folded):
            yield kind, m.start(), m.end()


def _same(kind: str, text: str) -> str:
    """A phone number or an e-mail address in the form two writings of it share."""
    if kind == "EMAIL":
        return text.strip().lower()
    try:
        return phone_e164(text)
    except ValidationFailed:
        return "".join(ch for ch in text if ch.isdigit())


def _declared_values(purpose: Purpose, values: Mapping[str, object]) -> dict[str, set[str]]:
    """The phone numbers and e-mail addresses the form's own fields hold."""
    kinds = {FieldType.PHONE: "PHONE", FieldType.EMAIL: "EMAIL"}
    out: dict[str, set[str]] = {"PHONE": set(), "EMAIL": set()}
    for field in purpose.resolved_fields:
        value = values.get(field.name)
        if field.type in kinds and isinstance(value, str) and value.strip():
            kind = kinds[field.type]
            out[kind].add(_same(kind, value))
    return out


def screen(mandate: Mandate, purpose_code: str, values: Mapping[str, object]) -> list[Finding]:
    """Findings in the free-text and text fields of ``values`` (already validated for the
    purpose): undeclared personal data, and the other Art. 9 categories and Art. 10 data,
    refused unless the purpose declares their basis.

    A purpose that declares a phone (an e-mail) field covers *that* number in the text — the
    operator repeating the caller's own number — not another one: a second number in a note
    is someone else's (a neighbour, a relative), which the purpose does not declare."""
    purpose = mandate.purpose(purpose_code)
    allowed = allowed_types(purpose)
    own = _declared_values(purpose, values)
    refused_always = ALWAYS_REFUSED | (
        frozenset() if purpose.special_category_basis is not None else frozenset({"HEALTH"})
    )
    basis = {
        SPECIAL: purpose.special_category_basis is not None,
        OFFENCE: bool(purpose.criminal_data_basis),
    }
    findings: list[Finding] = []
    for field in purpose.resolved_fields:
        value = values.get(field.name)
        if field.type not in (FieldType.FREE_TEXT, FieldType.TEXT) or not isinstance(value, str):
            continue
        fr, en = field.display_label_fr, field.display_label_en
        for kind, start, end in sensitive_terms(value):
            if not basis[kind]:
                findings.append(Finding(field.name, kind, start, end, True, fr, en))
        if field.type != FieldType.FREE_TEXT:
            # A short text field (a name, an address) is screened for the categories above
            # and for what is always refused, not for every undeclared type.
            for entity in undeclared(value, allowed):
                if entity.type in refused_always:
                    findings.append(
                        Finding(field.name, entity.type, entity.start, entity.end, True, fr, en)
                    )
            continue
        for entity in undeclared(value, allowed - {"PHONE", "EMAIL"}):
            another = entity.type in ("PHONE", "EMAIL") and entity.type in allowed
            if another and _same(entity.type, entity.text) in own[entity.type]:
                continue  # the form's own number or address, written again
            findings.append(
                Finding(
                    field=field.name,
                    type=entity.type,
                    start=entity.start,
                    end=entity.end,
                    refused=entity.type in refused_always,
                    label_fr=field.display_label_fr,
                    label_en=field.display_label_en,
                    another=another,
                )
            )
    return findings
