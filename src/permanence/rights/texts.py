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


def received_letter(kind: str, due: str) -> str:
    return (
        f"Nous avons bien reçu votre demande {KIND_FR[kind]}. "
        f"Une réponse vous sera apportée au plus tard le {due}."
    )


def extension_letter(kind: str, reason: str, due: str) -> str:
    return (
        f"Le délai de réponse à votre demande {KIND_FR[kind]} est prolongé de deux mois "
        f"en raison de {EXTENSION_REASONS_FR[reason]} (article 12(3) du RGPD). "
        f"Une réponse vous sera apportée au plus tard le {due}."
    )


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
