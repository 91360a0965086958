"""Annexes II and III of the contract on the SCC, in French: the description of the processing
from the mandate and the technical and organisational measures from what the deployment does
(also the DPIA's measures, dpia/service.py)."""

from __future__ import annotations

from permanence.config import Settings
from permanence.contracts.subprocessors import OBJECTION_WINDOW
from permanence.mandates.schema import Mandate
from permanence.mandates.wording import (
    BASIS_FR,
    CATEGORY_FR,
    SUBJECTS_FR,
    retention_fr,
    sensitive_fr,
)


def security_measures_fr(settings: Settings) -> list[tuple[str, list[str]]]:
    """Annex III: what this deployment does, under the headings of the CNIL's security guide
    (« Guide de la sécurité des données personnelles »), each item true of the settings."""
    isolation = (
        "cloisonnement des clients par la sécurité au niveau des lignes de PostgreSQL, "
        "sous un rôle applicatif sans privilège sur le schéma"
        if settings.is_postgres
        else "cloisonnement des clients contrôlé à chaque accès par la couche de service"
    )
    backups = [
        "sauvegardes chiffrées ; un effacement est rejoué sur toute sauvegarde restaurée "
        "(journal d'effacement)"
    ]
    if settings.backup_storage:
        backups.append("copie des sauvegardes hors du serveur (stockage déclaré sous-traitant)")
    hosting = ["hébergement certifié HDS (art. L.1111-8 du code de la santé publique)"]
    if not settings.hds_hosting:
        hosting = ["hébergement non déclaré certifié HDS : aucune donnée de santé admise"]
    return [
        (
            "Sensibiliser les utilisateurs",
            [
                "personnel formé à la protection des données avant tout accès, formation "
                "renouvelée à échéance",
                "engagement de confidentialité signé par chaque membre du personnel "
                "(art. 28(3)(b))",
            ],
        ),
        (
            "Authentifier les utilisateurs",
            [
                "mot de passe et second facteur TOTP obligatoires pour le personnel",
                "verrouillage du compte après échecs répétés",
            ],
        ),
        ("Gérer les habilitations", [isolation, "rôles séparés (opérateur, superviseur, DPO)"]),
        (
            "Tracer les opérations et gérer les incidents",
            [
                "journal d'audit chaîné (SHA-256) de chaque lecture et modification, avec points "
                "de contrôle signés (Ed25519) ; conservé 12 mois au plus",
                "registre des violations ; notification au client de toute violation le "
                "concernant (art. 33(2), clause 9.2)",
            ],
        ),
        (
            "Chiffrer, garantir l'intégrité ou signer",
            [
                "chiffrement AES-256-GCM de chaque donnée sous une clé propre à chaque appelant "
                "(effacement cryptographique)",
                "index aveugles tronqués pour les recherches, sans déchiffrement",
                "flux chiffrés (HTTPS) ; webhooks signés",
            ],
        ),
        ("Sauvegarder et prévoir la continuité d'activité", backups),
        ("Sécuriser les serveurs et l'hébergement", hosting),
        (
            "Encadrer la sous-traitance",
            [
                "sous-traitants ultérieurs liés par les mêmes obligations (art. 28(4)) : "
                "voir annexe IV",
                f"changement annoncé {OBJECTION_WINDOW.days} jours à l'avance, droit "
                "d'opposition (clause 7.7, point a))",
            ],
        ),
    ]


def _description(mandate: Mandate) -> list[tuple[str, str]]:
    """Annex II from the mandate, one block per purpose."""
    out = [
        (
            "Catégories de personnes concernées",
            SUBJECTS_FR.get(mandate.kind, "clients, prospects et autres appelants du client"),
        ),
        (
            "Nature du traitement",
            "réception des appels téléphoniques pour le compte du client, prise de messages "
            "et de rendez-vous, transmission au client selon ses instructions (mandat)",
        ),
    ]
    for p in mandate.purposes:
        categories = ", ".join(sorted({CATEGORY_FR[f.category] for f in p.resolved_fields}))
        retention = " ; ".join(retention_fr(k.value, d) for k, d in p.retention.items())
        out.append(
            (
                f"Finalité « {p.label_fr} » ({p.code})",
                f"base légale : {BASIS_FR[p.legal_basis]} ; données : {categories} ; "
                f"données sensibles : {sensitive_fr(mandate, p)} ; "
                f"durée de conservation : {retention or 'non déclarée'}",
            )
        )
    if mandate.recording.enabled:
        out.append(
            (
                "Enregistrement des appels",
                mandate.recording.purpose_fr or "déclaré au mandat (finalité non précisée)",
            )
        )
    out.append(
        (
            "Durée du traitement",
            "la durée du contrat ; à son terme, restitution et/ou suppression selon le choix "
            "du client, attestée par un certificat signé (clause 10, point d))",
        )
    )
    return out
