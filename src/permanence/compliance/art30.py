"""The records of processing activities (Art. 30), generated — never typed twice.

- The processor's record (30(2)): for each client (controller), one line per purpose of its
  current mandate: the purpose, basis, categories, retention and recipients come from the
  mandate; the sub-processors and transfers from the registry; the security measures from the
  deployment's configuration.
- The provider's own controller record (30(1)): the processing the provider does for itself
  (staff, access logs, client users), described by the product, which is what implements it.

Exported as HTML and as CSV with the columns of the CNIL's register template.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account, AccountStatus
from permanence.accounts.service import mandate_version
from permanence.config import Settings
from permanence.contracts.configured import (
    SAFEGUARD_FR,
    ConfiguredService,
    configured_services,
)
from permanence.contracts.model import SubProcessor
from permanence.contracts.provider import name_and_address as _provider
from permanence.contracts.provider import provider_dpo as _provider_dpo
from permanence.contracts.provider import provider_identity
from permanence.contracts.subprocessors import EEA
from permanence.db import acting_for, utcnow
from permanence.errors import NotFound
from permanence.mandates.base import LegalBasis
from permanence.mandates.mandate import Mandate
from permanence.mandates.purposes import Purpose
from permanence.mandates.sections import EmailNotificationRecipient, PortalRecipient
from permanence.mandates.wording import (
    BASIS_FR,
    CATEGORY_FR,
    SUBJECTS_FR,
    retention_fr,
    sensitive_fr,
)
from permanence.render import paris_date, render

# The columns of the CNIL's register template (« modèle de registre »), in its order.
CSV_COLUMNS = [
    ("register", "Registre"),
    ("name", "Nom du traitement"),
    ("controller", "Responsable du traitement"),
    ("controller_contact", "Coordonnées du responsable"),
    ("dpo", "Délégué à la protection des données"),
    ("processor", "Sous-traitant"),
    ("purposes", "Finalité(s) du traitement"),
    ("legal_basis", "Base légale"),
    ("subject_categories", "Catégories de personnes concernées"),
    ("data_categories", "Catégories de données personnelles"),
    ("sensitive_data", "Données sensibles"),
    ("retention", "Durées de conservation"),
    ("recipients", "Catégories de destinataires"),
    ("subprocessors", "Sous-traitants ultérieurs"),
    ("transfers", "Transferts hors UE"),
    ("safeguards", "Garanties des transferts"),
    ("security_measures", "Mesures de sécurité"),
    ("mandate_version", "Version des instructions (mandat)"),
    ("updated_at", "Date de mise à jour"),
]


@dataclass(frozen=True)
class ProcessingRecord:
    register: str  # "30(1)" or "30(2)"
    account_slug: str | None
    name: str
    controller: str
    controller_contact: str
    dpo: str
    processor: str
    purposes: str
    legal_basis: str
    subject_categories: str
    data_categories: str
    sensitive_data: str
    retention: str
    recipients: str
    subprocessors: str
    transfers: str
    safeguards: str
    security_measures: str
    mandate_version: str
    updated_at: str


def security_measures(settings: Settings) -> str:
    """What the deployment does, said as the configuration makes it true."""
    items = [
        "chiffrement AES-256-GCM de chaque donnée sous une clé propre à chaque appelant "
        "(effacement cryptographique)",
        "index aveugles tronqués pour les recherches, sans déchiffrement",
        "journal d'audit chaîné (SHA-256) avec points de contrôle signés (Ed25519), "
        "lectures comprises",
        "authentification forte (TOTP) du personnel",
        "personnel formé et lié par un engagement de confidentialité",
        "cloisonnement des clients par la sécurité au niveau des lignes (PostgreSQL)"
        if settings.is_postgres
        else "cloisonnement des clients contrôlé à chaque accès",
    ]
    if settings.hds_hosting:
        items.append("hébergement certifié HDS")
    return " ; ".join(items)


def _subprocessors(session: Session) -> list[SubProcessor]:
    return list(
        session.scalars(
            select(SubProcessor).where(SubProcessor.status == "active").order_by(SubProcessor.name)
        )
    )


def _unregistered(
    subprocessors: list[SubProcessor], services: list[ConfiguredService]
) -> list[ConfiguredService]:
    """Configured services that no active register entry covers (still named: the records
    say what the deployment does, registered or not)."""
    active = {sp.id for sp in subprocessors}
    return [c for c in services if c.entry is None or c.entry.id not in active]


def _subprocessors_fr(subprocessors: list[SubProcessor], services: list[ConfiguredService]) -> str:
    used = {c.entry.id: c for c in services if c.entry is not None}
    items = []
    for sp in subprocessors:
        text = f"{sp.name} ({sp.service}, {sp.country})"
        if sp.id in used:
            text += f" : {used[sp.id].service_fr}, configuré ({used[sp.id].host})"
        items.append(text)
    items += [c.describe_fr() for c in _unregistered(subprocessors, services)]
    return " ; ".join(items) or "aucun"


def _subprocessor_transfers(
    subprocessors: list[SubProcessor], services: list[ConfiguredService]
) -> tuple[list[str], list[str]]:
    """Transfers outside the EEA through sub-processors, with their Chapter V tool."""
    transfers, safeguards = [], []
    for sp in subprocessors:
        if sp.country not in EEA:
            transfers.append(f"{sp.country} ({sp.name}, {sp.service})")
            safeguards.append(f"{sp.name} : {SAFEGUARD_FR.get(sp.safeguard, sp.safeguard)}")
    for c in _unregistered(subprocessors, services):
        if c.transfer:
            transfers.append(f"{c.country or 'pays non déclaré'} ({c.name}, {c.service_fr})")
            safeguards.append(f"{c.name} : {c.safeguard_fr}")
    return transfers, safeguards


def _recipients_fr(mandate: Mandate) -> str:
    out = ["personnel habilité du prestataire (opérateurs, superviseurs)"]
    for r in mandate.recipients:
        if isinstance(r, PortalRecipient):
            out.append("le responsable du traitement, sur son portail")
        elif isinstance(r, EmailNotificationRecipient):
            out.append("avis par e-mail au responsable, sans donnée personnelle")
        else:
            out.append("système du responsable (webhook)")
    return " ; ".join(out)


def _purpose_record(
    settings: Settings,
    account: Account,
    mandate: Mandate,
    version: int,
    created: dt.datetime,
    purpose: Purpose,
    subprocessors: list[SubProcessor],
    provider_dpo: str,
    services: list[ConfiguredService],
) -> ProcessingRecord:
    fields = purpose.resolved_fields
    categories = sorted({CATEGORY_FR[f.category] for f in fields})
    sensitive_text = sensitive_fr(mandate, purpose)
    basis = BASIS_FR[purpose.legal_basis]
    if purpose.legitimate_interest:
        basis += f" : {purpose.legitimate_interest}"
    transfers = [f"{t.country} ({t.recipient or 'destinataire'})" for t in mandate.transfers]
    safeguards = [
        f"{t.country} : {SAFEGUARD_FR.get(t.safeguard.value, t.safeguard.value)}"
        for t in mandate.transfers
    ]
    more_transfers, more_safeguards = _subprocessor_transfers(subprocessors, services)
    transfers += more_transfers
    safeguards += more_safeguards
    c = mandate.controller
    dpo = f"{c.dpo.name} <{c.dpo.email}>" if c.dpo else "aucun désigné"
    return ProcessingRecord(
        register="30(2)",
        account_slug=account.slug,
        name=f"{purpose.label_fr} ({purpose.code})",
        controller=c.name,
        controller_contact=f"{c.address} ; {c.contact_email}",
        dpo=f"responsable : {dpo} ; sous-traitant : {provider_dpo}",
        processor=provider_identity(settings),
        purposes=purpose.label_fr,
        legal_basis=basis,
        subject_categories=SUBJECTS_FR.get(mandate.kind, "clients, prospects et autres appelants"),
        data_categories=", ".join(categories),
        sensitive_data=sensitive_text,
        retention=" ; ".join(retention_fr(k.value, d) for k, d in purpose.retention.items()),
        recipients=_recipients_fr(mandate),
        subprocessors=_subprocessors_fr(subprocessors, services),
        transfers=" ; ".join(transfers) or "aucun",
        safeguards=" ; ".join(safeguards) or "sans objet",
        security_measures=security_measures(settings),
        mandate_version=str(version),
        updated_at=created.date().isoformat(),
    )


def processor_record(
    session: Session, settings: Settings, account_ids: Sequence[uuid.UUID] | None = None
) -> list[ProcessingRecord]:
    """30(2): per controller (active accounts), one record per purpose of the current mandate."""
    subprocessors = _subprocessors(session)
    services = configured_services(session, settings)
    provider_dpo = _provider_dpo(session, settings)
    q = select(Account).where(Account.status == AccountStatus.ACTIVE).order_by(Account.slug)
    if account_ids is not None:
        q = q.where(Account.id.in_(list(account_ids)))
    out: list[ProcessingRecord] = []
    for account in session.scalars(q).all():
        with acting_for(session, account.id):
            try:
                row, mandate = mandate_version(session, account.id)
            except NotFound:
                continue
        for purpose in mandate.purposes:
            out.append(
                _purpose_record(
                    settings,
                    account,
                    mandate,
                    row.version,
                    row.created_at,
                    purpose,
                    subprocessors,
                    provider_dpo,
                    services,
                )
            )
    return out


def controller_record(session: Session, settings: Settings) -> list[ProcessingRecord]:
    """30(1): what the provider processes for itself, as the product implements it."""
    provider = _provider(settings)
    dpo = _provider_dpo(session, settings)
    measures = security_measures(settings)
    subprocessors = _subprocessors(session)
    services = configured_services(session, settings)
    sub_text = _subprocessors_fr(subprocessors, services)
    transfers, safeguards = _subprocessor_transfers(subprocessors, services)
    today = paris_date(utcnow()).isoformat()

    def rec(
        name: str, basis: str, subjects: str, data: str, retention: str, recipients: str
    ) -> ProcessingRecord:
        return ProcessingRecord(
            register="30(1)",
            account_slug=None,
            name=name,
            controller=provider,
            controller_contact=" ; ".join(
                p for p in (settings.provider_address, settings.provider_contact_email) if p
            ),
            dpo=dpo,
            processor="",
            purposes=name,
            legal_basis=basis,
            subject_categories=subjects,
            data_categories=data,
            sensitive_data="non",
            retention=retention,
            recipients=recipients,
            subprocessors=sub_text,
            transfers=" ; ".join(transfers) or "aucun",
            safeguards=" ; ".join(safeguards) or "sans objet",
            security_measures=measures,
            mandate_version="",
            updated_at=today,
        )

    return [
        rec(
            "Gestion des habilitations du personnel",
            BASIS_FR[LegalBasis.CONTRACT] + " ; " + BASIS_FR[LegalBasis.LEGAL_OBLIGATION],
            "opérateurs, superviseurs, DPO et administrateurs du prestataire",
            "identité, e-mail professionnel, rôle, secret d'authentification (scellé), "
            "formations suivies, engagements de confidentialité",
            "durée de l'emploi",
            "administrateurs et DPO du prestataire",
        ),
        rec(
            "Traçabilité des accès aux données (journal d'audit)",
            BASIS_FR[LegalBasis.LEGAL_OBLIGATION] + " : sécurité du traitement (art. 32)",
            "personnel du prestataire, utilisateurs des clients",
            "identifiants pseudonymes, rôle, action, motif codé, horodatage",
            "journal chaîné conservé avec la relation client (entrées pseudonymes)",
            "DPO du prestataire ; responsables du traitement sur demande",
        ),
        rec(
            "Évaluation de la qualité des appels (grilles d'évaluation du personnel)",
            BASIS_FR[LegalBasis.LEGITIMATE_INTEREST]
            + " : qualité du service et formation des opérateurs",
            "opérateurs du prestataire (informés ; chacun voit ses propres évaluations)",
            "opérateur et superviseur évaluateurs (identifiants), appel évalué (identifiant), "
            "notes par critère, commentaire sans donnée personnelle sur l'appelant",
            "durée « evaluation » du mandat de l'appel, un an au plus, à compter de "
            "l'évaluation ; suppression automatique par la purge de conservation",
            "superviseurs et administrateurs du prestataire ; l'opérateur évalué",
        ),
        rec(
            "Gestion des comptes des utilisateurs clients",
            BASIS_FR[LegalBasis.CONTRACT],
            "utilisateurs désignés par les clients",
            "identité, e-mail professionnel, mot de passe haché",
            "durée du contrat avec le client",
            "administrateurs du prestataire",
        ),
    ]


def to_csv(records: Sequence[ProcessingRecord]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    writer.writerow([label for _k, label in CSV_COLUMNS])
    for r in records:
        data = asdict(r)
        writer.writerow([data[k] for k, _label in CSV_COLUMNS])
    return "\ufeff" + buf.getvalue()  # BOM: spreadsheet software then reads UTF-8


def to_html(
    settings: Settings,
    processor: Sequence[ProcessingRecord],
    controller: Sequence[ProcessingRecord],
) -> str:
    by_controller: dict[str, list[ProcessingRecord]] = {}
    for r in processor:
        by_controller.setdefault(r.controller, []).append(r)
    return render(
        "permanence.compliance",
        "art30.html",
        provider=provider_identity(settings),
        by_controller=by_controller,
        controller=controller,
        columns=CSV_COLUMNS,
        now=utcnow(),
    )


def export(
    session: Session,
    settings: Settings,
    fmt: str,
    account_ids: Sequence[uuid.UUID] | None = None,
) -> str:
    """The record as ``html`` or ``csv``; with accounts given, only their 30(2) sections."""
    from permanence.audit import service as audit

    if fmt not in {"html", "csv"}:
        from permanence.errors import ValidationFailed

        raise ValidationFailed("format must be html or csv")
    processor = processor_record(session, settings, account_ids)
    controller = [] if account_ids is not None else controller_record(session, settings)
    audit.record(
        session,
        "art30.export",
        "art30",
        details={"format": fmt, "records": len(processor) + len(controller)},
    )
    if fmt == "csv":
        return to_csv([*processor, *controller])
    return to_html(settings, processor, controller)
