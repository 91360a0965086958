"""Realistic French demo data: three client accounts, staff, callers, calls, messages and
appointments. Deterministic (fixed seed), loaded through the same services as real use, so
everything is sealed, indexed and audited exactly as in production.

Phone numbers are in the range ARCEP reserves for fiction (01 99 00 xx xx).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sqlalchemy import select

from permanence.accounts.model import Account, AccountKind, Did
from permanence.accounts.service import create_account, import_mandate, mandate_version
from permanence.calls import service as calls
from permanence.compliance.recording_checks import STAFF_INFORMED_COURSE
from permanence.context import AccessContext, Role
from permanence.contracts import flowdown, scc
from permanence.contracts import service as contracts
from permanence.contracts.scc_document import Signatory
from permanence.db import switch_account, utcnow
from permanence.delivery.webhook_secrets import set_webhook_secret
from permanence.demo.breach import demo_breach
from permanence.demo.recording import record_demo_call
from permanence.dpia import service as dpias
from permanence.errors import Conflict
from permanence.mandates.base import FieldType
from permanence.mandates.parsing import parse_mandate
from permanence.mandates.purposes import Purpose
from permanence.mandates.sections import WebhookRecipient
from permanence.messages import service as messages
from permanence.needtoknow import service as needtoknow
from permanence.routing.devices import set_device
from permanence.runtime import Runtime
from permanence.staff.model import User
from permanence.staff.service import create_user
from permanence.staff.training import add_course, missing, record_training, sign_undertaking
from permanence.subjects import service as subjects

DEMO_PASSWORD = "demo-permanence-2026"
ACCOUNTS = [
    ("cabinet-lefevre", "Cabinet du Dr Claire Lefèvre", AccountKind.MEDICAL),
    ("cabinet-moreau-avocats", "Moreau & Associés, avocats", AccountKind.LEGAL),
    ("plomberie-durand", "Plomberie Durand", AccountKind.TRADES),
]
STAFF = [
    ("operatrice@permanence.example", "Sophie Bernard", Role.OPERATOR),
    ("operateur@permanence.example", "Karim Haddad", Role.OPERATOR),
    ("superviseure@permanence.example", "Nathalie Roux", Role.SUPERVISOR),
    ("dpo@permanence.example", "Julien Garnier", Role.DPO),
]
# Each demo operator's own line (permanence.routing): softphones on the provider's client SDK
# and a SIP desk phone.
DEMO_DEVICES = {
    "operatrice@permanence.example": "client:sophie-bernard",
    "operateur@permanence.example": "client:karim-haddad",
    "superviseure@permanence.example": "sip:nathalie.roux@permanence.sip.twilio.com",
}
CLIENT_USERS = {
    "cabinet-lefevre": ("secretariat@cabinet-lefevre.example", "Secrétariat Lefèvre"),
    "cabinet-moreau-avocats": ("secretariat@moreau-avocats.example", "Secrétariat Moreau"),
    "plomberie-durand": ("contact@plomberie-durand.example", "Bureau Durand"),
}

SUBPROCESSORS = [
    ("hebergeur-sante", "Hébergeur Santé Exemple", "hébergement certifié HDS", "FR"),
    ("sauvegarde-exemple", "Sauvegardes Exemple", "sauvegardes chiffrées", "FR"),
]


@dataclass(frozen=True)
class DemoCaller:
    first: str
    last: str
    phone: str
    email: str | None


# The caller the README suggests for trying the rights workflow (medical practice).
README_CALLER = DemoCaller("Camille", "Martin", "01 99 00 12 34", "camille.martin@exemple.fr")

_FIRST = [
    "Léa",
    "Hugo",
    "Chloé",
    "Lucas",
    "Manon",
    "Louis",
    "Inès",
    "Gabriel",
    "Jade",
    "Arthur",
    "Emma",
    "Jules",
    "Zoé",
    "Nathan",
    "Alice",
    "Raphaël",
    "Lina",
    "Thomas",
    "Rose",
    "Théo",
    "Anaïs",
    "Mathis",
    "Clémence",
    "Yanis",
    "Océane",
    "Antoine",
    "Margaux",
    "Mehdi",
    "Élodie",
]
_LAST = [
    "Dubois",
    "Lambert",
    "Fontaine",
    "Rousseau",
    "Vincent",
    "Muller",
    "Lefebvre",
    "Faure",
    "André",
    "Mercier",
    "Blanc",
    "Guérin",
    "Boyer",
    "Garnier",
    "Chevalier",
    "François",
    "Legrand",
    "Gauthier",
    "Perrin",
    "Robin",
    "Clément",
    "Morin",
    "Nicolas",
    "Henry",
    "Roussel",
    "Mathieu",
    "Gautier",
    "Masson",
    "Marchand",
    "Duval",
]
_NOTES = {
    AccountKind.MEDICAL: [
        "Demande le renouvellement de son ordonnance habituelle.",
        "Fièvre depuis deux jours chez son enfant, souhaite un conseil du médecin.",
        "Résultats de prise de sang reçus, demande que le docteur la rappelle.",
        "Douleurs au dos persistantes, souhaite un rendez-vous cette semaine.",
        "Demande un certificat médical pour le sport.",
    ],
    AccountKind.LEGAL: [
        "Souhaite faire le point sur l'avancement de son dossier prud'homal.",
        "A reçu une assignation, demande à être rappelé rapidement.",
        "Question sur la dernière facture d'honoraires.",
        "Nouveau dossier : litige avec son propriétaire au sujet du dépôt de garantie.",
        "Demande l'envoi des conclusions avant l'audience.",
    ],
    AccountKind.TRADES: [
        "Fuite sous l'évier de la cuisine, l'eau coule en continu.",
        "Chauffe-eau en panne depuis ce matin, plus d'eau chaude.",
        "WC bouchés, demande une intervention rapide.",
        "Souhaite un devis pour remplacer la baignoire par une douche.",
        "Robinet de la salle de bains qui goutte.",
    ],
}
_TEXT_VALUES = {
    "address": [
        "14 rue des Tanneurs, 44000 Nantes",
        "3 allée des Cerisiers, 44300 Nantes",
        "27 boulevard Victor Hugo, 44200 Nantes",
        "8 impasse du Moulin, 44400 Rezé",
    ],
    "case_reference": ["2025-PRU-014", "2026-BAIL-102", "2025-FAM-031", "2026-COM-007"],
}


def _demo_callers(rng: random.Random, n: int, offset: int) -> list[DemoCaller]:
    callers = []
    for i in range(n):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        number = f"01 99 00 {(offset + i) // 100 % 100:02d} {(offset + i) % 100:02d}"
        email = (
            f"{first.lower()}.{last.lower()}@exemple.fr".replace("é", "e")
            .replace("ë", "e")
            .replace("ï", "i")
            .replace("è", "e")
            if rng.random() < 0.6
            else None
        )
        callers.append(DemoCaller(first, last, number, email))
    return callers


def demo_callers() -> dict[str, list[DemoCaller]]:
    """Every demo caller per account slug (tests scan the database files for these)."""
    rng = random.Random(2026)
    out: dict[str, list[DemoCaller]] = {}
    for n, (slug, _name, _kind) in enumerate(ACCOUNTS):
        callers = _demo_callers(rng, 14, 5000 + n * 100)
        if slug == "cabinet-lefevre":
            callers.insert(0, README_CALLER)
        out[slug] = callers
    return out


def _values(
    purpose: Purpose, caller: DemoCaller, kind: AccountKind, rng: random.Random, slot: dt.datetime
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in purpose.resolved_fields:
        name = field.name
        if name == "last_name":
            values[name] = caller.last
        elif name == "first_name":
            values[name] = caller.first
        elif field.type == FieldType.PHONE:
            values[name] = caller.phone
        elif field.type == FieldType.EMAIL:
            if caller.email:
                values[name] = caller.email
        elif field.type == FieldType.BOOL:
            values[name] = rng.random() < 0.3
        elif field.type == FieldType.CHOICE and field.choices:
            values[name] = rng.choice(field.choices)
        elif field.type == FieldType.DATETIME:
            values[name] = slot.isoformat()
        elif field.type == FieldType.DATE:
            if field.required or rng.random() < 0.5:
                values[name] = dt.date(
                    rng.randint(1950, 2010), rng.randint(1, 12), rng.randint(1, 28)
                ).isoformat()
        elif field.type == FieldType.FREE_TEXT:
            values[name] = rng.choice(_NOTES[kind])
        elif field.type == FieldType.INTEGER:
            values[name] = rng.randint(1, 5)
        elif name in _TEXT_VALUES:
            values[name] = rng.choice(_TEXT_VALUES[name])
        elif field.required:
            values[name] = "à préciser"
    return values


def _slots(start: dt.datetime) -> Iterator[dt.datetime]:
    """Half-hour business slots on weekdays, from ``start`` on."""
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while True:
        day += dt.timedelta(days=1)
        if day.weekday() >= 5:
            continue
        for hour in (9, 10, 11, 14, 15, 16):
            for minute in (0, 30):
                yield day.replace(hour=hour, minute=minute)


def load_demo(rt: Runtime, *, calls_per_account: int = 30) -> list[str]:
    """Load the demo data once; returns lines to print. Refuses to load it twice."""
    system = AccessContext.system("cli:demo")
    with rt.db.session(system, readonly=True) as s:
        if s.scalars(select(Account.id).where(Account.slug == ACCOUNTS[0][0])).first():
            raise Conflict("demo data is already loaded in this database")
    rng = random.Random(2026)
    lines: list[str] = []
    admin = AccessContext(role=Role.ADMIN, reason="cli:demo")
    with rt.db.session(admin) as s:
        # Staff who existed before (the administrator made by `init`) are trained too: the
        # demo stands for a provider whose whole staff passes the training gate.
        for user_id in s.scalars(
            select(User.id).where(User.role.in_([Role.ADMIN, Role.SUPERVISOR, Role.DPO]))
        ).all():
            if missing(s, user_id):
                record_training(s, user_id)
                sign_undertaking(s, user_id)
        add_course(
            s,
            code=STAFF_INFORMED_COURSE,
            title_fr="Information sur l'enregistrement des appels (finalités, écoute, durée)",
            title_en="Information on call recording (purposes, who listens, retention)",
        )
        for email, name, role in STAFF:
            new = create_user(
                s, rt.keyring, email=email, display_name=name, role=role, password=DEMO_PASSWORD
            )
            # Trained and bound to confidentiality, so they may handle calls at once; the
            # supervisor's training is due for renewal within the month (the DPO's page shows
            # it under "À renouveler").
            age = dt.timedelta(days=340 if role is Role.SUPERVISOR else 30)
            record_training(
                s,
                new.user.id,
                completed_at=utcnow() - age,
                trainer="Julien Garnier (DPO)",
                duration_minutes=180,
            )
            sign_undertaking(s, new.user.id)
            if email in DEMO_DEVICES:
                set_device(s, new.user.id, DEMO_DEVICES[email])
            if role in (Role.OPERATOR, Role.SUPERVISOR):
                # Told that calls are recorded, why, who listens (CNIL recording guidance).
                record_training(
                    s, new.user.id, course=STAFF_INFORMED_COURSE, completed_at=utcnow() - age
                )
            lines.append(f"staff {role.value:<10} {email}  TOTP: {new.totp_uri}")
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    with rt.db.session(admin) as s:
        for code, name, service, country in SUBPROCESSORS:
            contracts.register_initial(
                s, code=code, name=name, service=service, country=country, hds_certified=True
            )
            # Art. 28(4): each bound by the same obligations, every point of 28(3).
            flowdown.record_flowdown(
                s,
                code,
                reference=f"DPA-{code}-2025",
                signed_at=now - dt.timedelta(days=400),
            )
    callers_by_account = demo_callers()
    with rt.db.session(system, readonly=True) as s:
        operator_ids = list(s.scalars(select(User.id).where(User.role == Role.OPERATOR)))
    for slug, name, kind in ACCOUNTS:
        with rt.db.session(admin) as s:
            account = create_account(s, rt.keyring, slug=slug, name=name, kind=kind)
            text = (
                resources.files("permanence.demo").joinpath("mandates", f"{slug}.yaml").read_text()
            )
            import_mandate(s, text, account_id=account.id)
            email, display = CLIENT_USERS[slug]
            s.info["ctx"] = admin
            create_user(
                s,
                rt.keyring,
                email=email,
                display_name=display,
                role=Role.CLIENT,
                password=DEMO_PASSWORD,
                account_id=account.id,
            )
            # The processing agreement generated on the Commission's SCC (Decision (EU)
            # 2021/915), signed a year ago by both parties; its PDF is stored with its hash.
            signed = now - dt.timedelta(days=365)
            switch_account(s, account.id)
            contract = scc.generate_contract(
                s, rt.settings, effective_from=signed, reference=f"DPA-{slug}-{signed.year}"
            )
            scc.sign_generated(
                s,
                rt.settings,
                contract.id,
                signatories=[
                    Signatory("controller", display, "représentant légal"),
                    Signatory("processor", "Julien Garnier", "délégué à la protection"),
                ],
                signed_at=signed,
            )
            # A demo mandate that names a webhook (none does as shipped: see README, "Demo
            # data") gets its signing secret, so its deliveries are signed, not refused.
            for recipient in parse_mandate(text).recipients:
                if isinstance(recipient, WebhookRecipient):
                    secret, _ = set_webhook_secret(s, rt.keyring, recipient.secret_ref)
                    lines.append(f"account {slug}: webhook secret {recipient.secret_ref} {secret}")
        # The DPIAs its processings need (Art. 35), prefilled and validated by the DPO; on a
        # health-data account, the operators who serve it are assigned (need-to-know).
        with rt.db.session(AccessContext.system("cli:demo", account_id=account.id)) as s:
            if needtoknow.handles_health_data(s, account.id):
                for operator_id in operator_ids:
                    needtoknow.assign(s, operator_id)
            for st in dpias.account_status(s):
                _row, mandate = mandate_version(s, account.id)
                draft = dpias.draft_content(rt.settings, mandate, st.processing)
                version = dpias.save_version(s, st.processing, draft.model_dump())
                dpias.validate(
                    s, version.id, "Risques résiduels acceptables ; réexamen à chaque mandat."
                )
        counts = _load_account_activity(
            rt, account, kind, callers_by_account[slug], rng, now, operator_ids, calls_per_account
        )
        lines.append(
            f"account {slug}: {len(callers_by_account[slug])} callers, {counts[0]} calls, "
            f"{counts[1]} messages, {counts[2]} appointments; client user {email}"
        )
    lines.append(record_demo_call(rt))
    lines.append(demo_breach(rt, now, CLIENT_USERS["plomberie-durand"][0]))
    lines.append(f"every demo user's password: {DEMO_PASSWORD}")
    lines.append(
        f"demo caller for the rights workflow: {README_CALLER.first} {README_CALLER.last}, "
        f"{README_CALLER.phone} (cabinet-lefevre)"
    )
    return lines


def _load_account_activity(
    rt: Runtime,
    account: Account,
    kind: AccountKind,
    callers: list[DemoCaller],
    rng: random.Random,
    now: dt.datetime,
    operator_ids: list[Any],
    n_calls: int,
) -> tuple[int, int, int]:
    dialled = _first_did(rt, account)
    slots = _slots(now)
    n_messages = n_appointments = 0
    for i in range(n_calls):
        caller = callers[i % len(callers)] if i < len(callers) else rng.choice(callers)
        started = now - dt.timedelta(days=rng.randint(0, 20), minutes=rng.randint(0, 600))
        operator = rng.choice(operator_ids) if operator_ids else None
        ctx = AccessContext(role=Role.OPERATOR, reason="cli:demo", actor_id=operator)
        with rt.db.session(ctx) as s:
            opened = calls.open_call(
                s,
                rt.keyring,
                dialled=dialled,
                caller_number=caller.phone,
                started_at=started,
            )
            call, mandate, subject = opened.call, opened.mandate, opened.caller
            calls.answer(s, call, at=started + dt.timedelta(seconds=rng.randint(5, 40)))
            calls.mark_notice_read(s, call, at=started + dt.timedelta(seconds=50))
            if not opened.known_caller:
                subjects.update_identity(
                    s,
                    rt.keyring,
                    subject,
                    subjects.Identity(
                        first_name=caller.first,
                        last_name=caller.last,
                        phone=caller.phone,
                        email=caller.email,
                    ),
                )
            booked = False
            appointment_purpose = next(
                (p for p in mandate.purposes if p.code == "appointment"), None
            )
            if appointment_purpose is not None and rng.random() < 0.4:
                slot = next(slots)
                messages.book_appointment(
                    s,
                    rt.keyring,
                    caller_id=subject.id,
                    purpose="appointment",
                    starts_at=slot,
                    ends_at=slot + dt.timedelta(minutes=30),
                    values=_values(appointment_purpose, caller, kind, rng, slot),
                    call_id=call.id,
                )
                n_appointments += 1
                booked = True
            if not booked:
                purpose = next(p for p in mandate.purposes if p.code != "appointment")
                messages.take_message(
                    s,
                    rt.keyring,
                    caller_id=subject.id,
                    purpose=purpose.code,
                    values=_values(purpose, caller, kind, rng, now),
                    call_id=call.id,
                    urgent=rng.random() < 0.15,
                )
                n_messages += 1
            calls.complete(s, call, at=started + dt.timedelta(minutes=rng.randint(2, 9)))
    return n_calls, n_messages, n_appointments


def _first_did(rt: Runtime, account: Account) -> str:
    with rt.db.session(AccessContext.system("cli:demo", account.id), readonly=True) as s:
        did = s.scalars(
            select(Did.e164).where(Did.account_id == account.id).order_by(Did.e164)
        ).first()
    if did is None:
        raise Conflict(f"the demo mandate of {account.slug} lists no number")
    return did
