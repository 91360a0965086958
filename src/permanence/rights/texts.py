"""What the requester is told, in French: the reasons are codes in the database, and these
are their wordings. No personal data is ever put into these texts."""

from __future__ import annotations

CNIL_COMPLAINT_URL = "https://www.cnil.fr/fr/plaintes"

# "demande …" + the kind (with its preposition).
KIND_FR = {
    "access": "d'accès à vos données (article 15 du RGPD)",
    "rectification": "de rectification de vos données (article 16 du RGPD)",
    "erasure": "d'effacement de vos données (article 17 du RGPD)",
    "restriction": "de limitation du traitement (article 18 du RGPD)",
    "objection": "d'opposition au traitement (article 21 du RGPD)",
    "portability": "de portabilité de vos données (article 20 du RGPD)",
}

EXTENSION_REASONS_FR = {
    "complexity": "la complexité de votre demande",
    "number_of_requests": "le nombre de demandes reçues",
}

WAITING_REASONS_FR = {
    "identity_ambiguous": "plusieurs personnes correspondent aux informations données",
    "identity_unconfirmed": "nous devons confirmer votre identité",
    "scope_unclear": "nous avons besoin de précisions sur l'objet de votre demande",
}

# Art. 12(4), 12(5), 17(3), 21(1), 12(6).
REFUSAL_REASONS_FR = {
    "identity_not_verified": "votre identité n'a pas pu être vérifiée (article 12(6) du RGPD)",
    "manifestly_unfounded": "la demande est manifestement infondée (article 12(5) du RGPD)",
    "manifestly_excessive": (
        "la demande est manifestement excessive, notamment par son caractère répétitif "
        "(article 12(5) du RGPD)"
    ),
    "legal_hold": (
        "les données sont nécessaires à la constatation, à l'exercice ou à la défense de "
        "droits en justice et font l'objet d'une conservation à ce titre "
        "(article 17(3)(e) du RGPD)"
    ),
    "art17_3_a_expression": "l'exercice du droit à la liberté d'expression (article 17(3)(a))",
    "art17_3_b_legal_obligation": "le respect d'une obligation légale (article 17(3)(b))",
    "art17_3_c_public_health": (
        "des motifs d'intérêt public dans le domaine de la santé publique (article 17(3)(c))"
    ),
    "art17_3_d_archiving": "des fins archivistiques, de recherche ou statistiques (art. 17(3)(d))",
    "art17_3_e_legal_claims": "la défense de droits en justice (article 17(3)(e))",
    "art21_compelling_grounds": (
        "des motifs légitimes et impérieux qui prévalent sur vos intérêts (article 21(1))"
    ),
}
EXCESSIVE_REASONS = frozenset({"manifestly_unfounded", "manifestly_excessive"})

REMEDIES_FR = (
    "Vous pouvez introduire une réclamation auprès de la Commission nationale de "
    "l'informatique et des libertés (CNIL), 3 place de Fontenoy, 75007 Paris, "
    f"{CNIL_COMPLAINT_URL}, "
    "et former un recours juridictionnel devant le tribunal compétent (article 79 du RGPD)."
)


# The kind in English, for the translation that follows each French letter.
KIND_EN = {
    "access": "to access your data (Article 15 GDPR)",
    "rectification": "to rectify your data (Article 16 GDPR)",
    "erasure": "to erase your data (Article 17 GDPR)",
    "restriction": "to restrict processing (Article 18 GDPR)",
    "objection": "objecting to processing (Article 21 GDPR)",
    "portability": "to port your data (Article 20 GDPR)",
}
EXTENSION_REASONS_EN = {
    "complexity": "the complexity of your request",
    "number_of_requests": "the number of requests received",
}


def received_letter(kind: str, received: str, due: str, *, verified: bool) -> str:
    """The acknowledgement at intake (Art. 12(3)): the date received, the deadline, what
    happens next; French, then English."""
    if verified:
        next_fr = "votre identité est confirmée : nous traitons votre demande."
        next_en = "your identity is confirmed: we are handling your request."
    else:
        next_fr = (
            "nous devons d'abord confirmer votre identité (article 12(6) du RGPD) : un code "
            "peut vous être envoyé aux coordonnées que nous avons de vous, ou nous vous "
            "rappellerons."
        )
        next_en = (
            "we must first confirm your identity (Article 12(6) GDPR): a code may be sent to "
            "the contact details we hold for you, or we will call you back."
        )
    return (
        f"Nous avons bien reçu le {received} votre demande {KIND_FR[kind]}. "
        f"Une réponse vous sera apportée au plus tard le {due} (un mois à compter de la "
        "réception, article 12(3) du RGPD). Ce délai peut être prolongé de deux mois en "
        "raison de la complexité ou du nombre de demandes ; vous en seriez informé(e) avant "
        f"le {due}, avec les raisons. Prochaine étape : {next_fr}\n\n"
        f"[English] We received your request {KIND_EN[kind]} on {received}. You will have an "
        f"answer by {due} at the latest (one month from receipt, Article 12(3) GDPR). This "
        "may be extended by two further months because of complexity or the number of "
        f"requests; you would be told before {due}, with the reasons. Next step: {next_en}"
    )


def extension_letter(kind: str, reason: str, due: str, first_due: str | None = None) -> str:
    """Art. 12(3): the extension, its reasons and the new date, sent within the first month;
    French, then English."""
    before = f" (au lieu du {first_due})" if first_due else ""
    before_en = f" (instead of {first_due})" if first_due else ""
    return (
        f"Le délai de réponse à votre demande {KIND_FR[kind]} est prolongé de deux mois "
        f"en raison de {EXTENSION_REASONS_FR[reason]} (article 12(3) du RGPD). "
        f"Une réponse vous sera apportée au plus tard le {due}{before}.\n\n"
        f"[English] The time to answer your request {KIND_EN[kind]} is extended by two "
        f"months because of {EXTENSION_REASONS_EN[reason]} (Article 12(3) GDPR). You will "
        f"have an answer by {due} at the latest{before_en}."
    )


def envelope(text: str, controller: str, reference: str) -> str:
    """Every letter names the controller and the request's reference (French, then English)."""
    return (
        f"{controller}\nRéférence de votre demande / Your request's reference : {reference}"
        f"\n\n{text}\n\n{controller}"
    )


def letter_subject(controller: str, reference: str) -> str:
    return f"{REQUESTER_SUBJECT} — {controller} — {reference}"


def waiting_letter(reason: str) -> str:
    return (
        f"Pour traiter votre demande, nous avons besoin d'informations complémentaires : "
        f"{WAITING_REASONS_FR[reason]}. Merci de nous recontacter."
    )


def refusal_letter(kind: str, reason: str, explanation: str) -> str:
    return (
        f"Nous ne pouvons pas donner suite à votre demande {KIND_FR[kind]}, pour le motif "
        f"suivant : {REFUSAL_REASONS_FR[reason]}. {explanation}\n\n{REMEDIES_FR}"
    )


def completed_letter(kind: str, link: str | None) -> str:
    text = f"Votre demande {KIND_FR[kind]} a été traitée."
    if link:
        text += (
            f" Vos données sont disponibles à l'adresse suivante, une seule fois et pendant "
            f"sept jours : {link}"
        )
    return text


def restriction_lift_letter() -> str:
    return (
        "La limitation du traitement de vos données (article 18 du RGPD) va être levée : "
        "vos données seront de nouveau traitées normalement."
    )


CODE_SUBJECT = "Votre code de vérification"


def code_text(code: str) -> str:
    return f"Votre code de vérification : {code}. Il expire dans 15 minutes."


REQUESTER_SUBJECT = "Votre demande relative à vos données personnelles"
