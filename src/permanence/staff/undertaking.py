"""The confidentiality undertaking staff sign in the product, by version.

A new version (a changed text) is added here with a new ``UNDERTAKING_VERSION`` in
``staff.training``: every staff member is then asked to sign it at their next page, and the
gate refuses personal data until they do. Old versions stay, so a signature can always be
read against the text that was signed.
"""

from __future__ import annotations

from permanence.staff.training import UNDERTAKING_VERSION

TEXTS: dict[str, dict[str, tuple[str, ...]]] = {
    "2026-1": {
        "fr": (
            "Dans le cadre de mes fonctions au sein du service de permanence téléphonique, "
            "j'ai accès à des données personnelles des appelants et des clients, traitées "
            "pour le compte de nos clients et selon leurs seules instructions "
            "(articles 28 et 29 du RGPD).",
            "Je m'engage à garder strictement confidentielles les informations dont j'ai "
            "connaissance : je ne les communique à personne qui n'a pas à les connaître, ni "
            "pendant ni après mes fonctions.",
            "Je n'utilise ces données que pour la mission confiée par le client, telle que "
            "son mandat la décrit ; je n'en fais aucune copie hors de l'outil et ne les "
            "consulte pas sans motif.",
            "Je signale sans délai au délégué à la protection des données toute perte, "
            "divulgation ou accès non autorisé dont j'ai connaissance.",
            "Je sais que mes accès sont journalisés et que le manquement à cet engagement "
            "m'expose à des sanctions disciplinaires et pénales (article 226-13 du code pénal "
            "pour le secret professionnel, articles 226-16 et suivants pour les données "
            "personnelles).",
        ),
        "en": (
            "In my work for the telephone answering service I have access to personal data "
            "of callers and clients, processed on behalf of our clients and on their "
            "instructions only (Articles 28 and 29 GDPR).",
            "I undertake to keep the information I learn strictly confidential: I disclose "
            "it to no one who does not need to know it, during my work and after it ends.",
            "I use this data only for the task the client gave us, as its mandate describes "
            "it; I make no copy of it outside the tool and do not look at it without a reason.",
            "I report at once to the data protection officer any loss, disclosure or "
            "unauthorised access I become aware of.",
            "I know that my access is logged and that breaking this undertaking exposes me to "
            "disciplinary and criminal sanctions (French Criminal Code, Article 226-13 on "
            "professional secrecy, Articles 226-16 and following on personal data).",
        ),
    },
}


def text(lang: str, version: str = UNDERTAKING_VERSION) -> tuple[str, ...]:
    """The undertaking's paragraphs in ``lang`` (French when the language is unknown)."""
    texts = TEXTS[version]
    return texts.get(lang, texts["fr"])
