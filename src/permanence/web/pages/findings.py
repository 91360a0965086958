"""What the screening found, said in words in the viewer's language.

The service reports personal data a purpose does not declare by type and position
(`mandates.screening.Finding`); the pages say "A social security number was found in the
field “Message for the doctor”." — in French on French pages — and what to do about it. The
text found is never repeated: the sentence names the kind of data and the field only.
"""

from __future__ import annotations

from collections.abc import Iterable

from permanence.mandates.forms import FieldError
from permanence.mandates.screening import Finding
from permanence.web.pages.render import translations


def N_(message: str) -> str:
    """Marks a message for extraction; it is translated when shown."""
    return message


# One sentence per kind: French needs the gender of each noun ("détecté", "détectée").
FOUND: dict[str, str] = {
    "NIR": N_("A social security number was found in the field “%(field)s”."),
    "CARD": N_("A payment card number was found in the field “%(field)s”."),
    "IBAN": N_("A bank account number (IBAN) was found in the field “%(field)s”."),
    "PHONE": N_("A phone number was found in the field “%(field)s”."),
    "EMAIL": N_("An e-mail address was found in the field “%(field)s”."),
    "DATE_OF_BIRTH": N_("A date of birth was found in the field “%(field)s”."),
    "ADDRESS": N_("A postal address was found in the field “%(field)s”."),
    "PERSON": N_("A person's name was found in the field “%(field)s”."),
    "HEALTH": N_("A health detail was found in the field “%(field)s”."),
    "SIREN": N_("A company number (SIREN) was found in the field “%(field)s”."),
    "SIRET": N_("An establishment number (SIRET) was found in the field “%(field)s”."),
    "SPECIAL_CATEGORY": N_(
        "A special category of data (beliefs, union membership…) was found in the field "
        "“%(field)s”."
    ),
    "OFFENCE": N_("Offence data (custody, criminal record…) was found in the field “%(field)s”."),
}
OTHER = N_("Personal data was found in the field “%(field)s”.")
# A second phone number or e-mail address: someone else's (the form holds the caller's).
ANOTHER: dict[str, str] = {
    "PHONE": N_("A phone number other than the caller's was found in the field “%(field)s”."),
    "EMAIL": N_("An e-mail address other than the caller's was found in the field “%(field)s”."),
}
REFUSED = N_("Remove it: it may not be kept.")
UNDECLARED = N_(
    "The purpose does not declare it: remove it, or tick the confirmation below if the "
    "message really needs it."
)
NOT_IN_PURPOSE = N_("The field “%(field)s” is not part of this purpose: it was not saved.")
NOT_IN_PURPOSE_UNNAMED = N_("A field that is not part of this purpose was sent: nothing was saved.")


def finding_texts(findings: Iterable[Finding], lang: str) -> list[str]:
    """One sentence per finding, in ``lang``: what kind of data, in which field, what to do."""
    gettext = translations(lang).gettext
    out: list[str] = []
    for f in findings:
        label = (f.label_en if lang == "en" else f.label_fr) or f.field
        sentence = ANOTHER.get(f.type) if f.another else None
        found = gettext(sentence or FOUND.get(f.type, OTHER)) % {"field": label}
        out.append(f"{found} {gettext(REFUSED if f.refused else UNDECLARED)}")
    return out


def undeclared_field_texts(errors: Iterable[FieldError], lang: str) -> list[str]:
    """The fields sent that the purpose does not declare (a stale or altered form)."""
    gettext = translations(lang).gettext
    return [
        gettext(NOT_IN_PURPOSE) % {"field": e.field} if e.field else gettext(NOT_IN_PURPOSE_UNNAMED)
        for e in errors
        if e.code == "not_in_purpose"
    ]
