"""The breach register (Art. 33(5)): every incident, notified or not, with its clocks.

Use cases for the DPO desk: open a breach at the moment of awareness, fill the Art. 33(3)
contents, compute its scope from the audit log ("operator X between T1 and T2: whose data did
they read?"), decide, notify each affected controller (portal, plus an e-mail that only says a
notification is waiting), give supplements in phases (33(4)), and draft the communication to
callers (Art. 34). Nothing here decrypts anything: the scope is an indexed query on the audit
log's actor, time and subject columns.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from permanence.accounts.model import Account, AccountStatus
from permanence.accounts.service import mandate_version
from permanence.audit import service as audit
from permanence.audit.model import AuditEntry
from permanence.breaches.clocks import Clock, cnil_clock, controller_clock
from permanence.breaches.model import (
    Breach,
    BreachAccount,
    BreachNotice,
    BreachSubject,
    BreachSupplement,
)
from permanence.context import STAFF_ROLES, Role
from permanence.contracts.service import controller_recipients
from permanence.db import acting_for, ctx_of, utcnow
from permanence.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from permanence.mail import Mail, Mailer
from permanence.pii import STRUCTURED_TYPES, detect
from permanence.render import paris, render
from permanence.staff.model import User
from permanence.subjects.model import Caller

DATA_CATEGORIES = {
    "identity": "identité (nom, prénom)",
    "contact": "coordonnées (téléphone, e-mail)",
    "health": "données de santé",
    "message_content": "contenu des messages",
    "appointments": "rendez-vous",
    "call_logs": "journaux d'appels",
    "recordings": "enregistrements d'appels",
    "client_accounts": "comptes des utilisateurs clients",
    "staff": "données du personnel",
    "credentials": "identifiants de connexion",
}
SUBJECT_CATEGORIES = {
    "callers": "appelants",
    "patients": "patients",
    "clients": "clients des comptes clients",
    "client_users": "utilisateurs des comptes clients",
    "staff": "personnel du prestataire",
}
# Why an incident was documented without notification (Art. 33(5) asks for the reason).
# Only when no client's data is concerned: a processor tells its controller of *every*
# breach affecting it (Art. 33(2) has no risk threshold; judging the risk is the
# controller's). There is no "unlikely risk" reason on the processor's side.
NOT_NOTIFIED_REASONS = {
    "no_personal_data": "aucune donnée à caractère personnel n'est concernée",
    "false_alarm": "l'incident n'a pas entraîné de violation",
}
# Labels of reasons no longer offered, for the rows written with them.
FORMER_NOT_NOTIFIED_REASONS = {
    "unlikely_risk": "violation jugée peu susceptible d'engendrer un risque (motif retiré : "
    "le sous-traitant notifie toute violation à son client, art. 33(2))",
}
# Why a controller does not tell its callers (Art. 34(1), 34(3)): its own decision.
SUBJECTS_REASONS = {
    "no_high_risk": "pas de risque élevé pour les personnes (art. 34(1))",
    "encrypted": "données chiffrées et inintelligibles (art. 34(3)(a))",
    "risk_removed": "mesures ultérieures écartant le risque élevé (art. 34(3)(b))",
    "disproportionate": "effort disproportionné : communication publique (art. 34(3)(c))",
}
CONTENT_FIELDS = (
    "nature",
    "data_categories",
    "subject_categories",
    "approx_subjects",
    "approx_records",
    "contact_point",
    "consequences",
    "measures",
)
_TEXT_FIELDS = ("nature", "contact_point", "consequences", "measures")
_REQUIRED_LABELS = {
    "nature": "(a) nature of the breach",
    "data_categories": "(a) categories of personal data",
    "subject_categories": "(a) categories of data subjects",
    "approx_subjects": "(a) approximate number of data subjects",
    "approx_records": "(a) approximate number of records",
    "contact_point": "(b) contact point",
    "consequences": "(c) likely consequences",
    "measures": "(d) measures taken or proposed",
}
DESK_ROLES = frozenset({Role.DPO, Role.ADMIN, Role.SYSTEM})
# What a controller learns from the register, in French (no codes in what people read).
STATUS_FR = {"open": "ouverte", "closed": "close"}
DECISION_FR = {
    "pending": "pas encore notifiée aux clients",
    "notify": "notifiée aux clients concernés (art. 33(2))",
    "not_notified": "documentée sans notification",
}
SUBJECTS_DECISION_FR = {
    "pending": "décision du client attendue",
    "communicate": "le client informe les personnes concernées",
    "not_required": "le client n'informe pas les personnes",
}
CLOCK_STATE_FR = {
    "running": "en cours",
    "overdue": "dépassée",
    "met": "respectée",
    "met_late": "respectée en retard",
}
# Audit actions that show an account's personal data without naming one caller: a list view,
# an export, a lookup. Each maps to the detail holding how many records it showed.
BULK_ACTIONS = {
    "agenda.viewed": "events",
    "agenda.feed_read": "events",
    "account.export": "records",
    "subject.lookup": "found",
}
# pg_advisory_xact_lock key taken while numbering a new breach ("permbrch").
REFERENCE_LOCK_KEY = int.from_bytes(b"permbrch", "big") >> 1


class BreachRefused(ValidationFailed):
    """A refusal of the register. ``key`` names it for the desk pages, which say it in the
    reader's language; the message stays English for the API, the command line and the logs.
    ``field`` names the field concerned, ``types`` the kinds of personal data found (never the
    data itself), ``fields`` the Art. 33(3) contents still missing."""

    def __init__(
        self,
        key: str,
        message: str,
        *,
        problems: list[str] | None = None,
        field: str = "",
        types: Sequence[str] = (),
        fields: Sequence[str] = (),
    ) -> None:
        super().__init__(message, problems)
        self.key, self.field = key, field
        self.types, self.fields = list(types), list(fields)


class BreachConflict(Conflict):
    """The breach's state forbids the action (closed, already notified…); ``key`` as above."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _require_desk(session: Session) -> uuid.UUID | None:
    ctx = ctx_of(session)
    if ctx.role not in DESK_ROLES:
        raise PermissionDenied("the breach register is kept by the DPO")
    return ctx.actor_id


def _screen(name: str, value: str) -> str:
    """Free text of the register must not carry personal data (e-mail allowed as contact)."""
    value = value.strip()
    kinds = STRUCTURED_TYPES - ({"EMAIL"} if name == "contact_point" else set())
    found = detect(value, kinds)
    if found:
        types = sorted({e.type for e in found})
        raise BreachRefused(
            "personal_data",
            f"{name} contains personal data ({', '.join(types)}): describe, do not quote",
            field=name,
            types=types,
        )
    return value


def _codes(name: str, values: Iterable[str], allowed: dict[str, str]) -> str:
    codes = sorted(set(values))
    unknown = [c for c in codes if c not in allowed]
    if unknown:
        raise BreachRefused(
            "unknown_code",
            f"unknown {name}: {', '.join(unknown)}; known: {', '.join(sorted(allowed))}",
        )
    return json.dumps(codes)


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None:
        raise BreachRefused("no_time_zone", f"{name} needs a time zone", field=name)
    return value.astimezone(dt.UTC)


def open_breach(
    session: Session,
    *,
    aware_at: dt.datetime,
    nature: str = "",
    occurred_from: dt.datetime | None = None,
    occurred_to: dt.datetime | None = None,
) -> Breach:
    """Record an incident at the moment the provider became aware of it (every clock starts)."""
    actor = _require_desk(session)
    aware = _aware(aware_at, "aware_at")
    if aware > utcnow() + dt.timedelta(minutes=5):
        raise BreachRefused("future", "aware_at is in the future", field="aware_at")
    year = aware.year
    if session.get_bind().dialect.name == "postgresql":
        # References are numbered per year: two desks opening a breach at the same moment must
        # not both take the next number (SQLite's writers are serialised already).
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": REFERENCE_LOCK_KEY})
    count = session.scalar(
        select(func.count()).select_from(Breach).where(Breach.reference.like(f"V-{year}-%"))
    )
    breach = Breach(
        id=uuid.uuid4(),
        reference=f"V-{year}-{(count or 0) + 1:03d}",
        aware_at=aware,
        nature=_screen("nature", nature),
        occurred_from=_aware(occurred_from, "occurred_from") if occurred_from else None,
        occurred_to=_aware(occurred_to, "occurred_to") if occurred_to else None,
        created_by=actor,
    )
    session.add(breach)
    session.flush()
    audit.record(session, "breach.open", "breach", breach.id, details={"ref": breach.reference})
    return breach


def get_breach(session: Session, breach_id: uuid.UUID) -> Breach:
    _require_desk(session)
    breach = session.get(Breach, breach_id)
    if breach is None:
        raise NotFound("no such breach")
    return breach


def breach_by_reference(session: Session, reference: str) -> Breach:
    _require_desk(session)
    breach = session.scalars(select(Breach).where(Breach.reference == reference)).first()
    if breach is None:
        raise NotFound(f"no breach '{reference}'")
    return breach


def _any_notice(session: Session, breach: Breach) -> bool:
    return any(ba.notified_at is not None for ba in _impacts(session, breach).values())


def update_contents(
    session: Session,
    breach_id: uuid.UUID,
    *,
    nature: str | None = None,
    data_categories: Sequence[str] | None = None,
    subject_categories: Sequence[str] | None = None,
    approx_subjects: int | None = None,
    approx_records: int | None = None,
    contact_point: str | None = None,
    consequences: str | None = None,
    measures: str | None = None,
    occurred_from: dt.datetime | None = None,
    occurred_to: dt.datetime | None = None,
    unintelligible: bool | None = None,
) -> list[str]:
    """Set Art. 33(3) contents. Once a notice went out, a change opens the next phase (33(4)).

    ``unintelligible``: the data that left was encrypted with a key that stayed safe (what
    opens the Art. 34(3)(a) exception to the controllers); refused for a breach scoped to a
    compromised staff account, which saw the data decrypted.

    Returns the names of the fields that changed.
    """
    actor = _require_desk(session)
    breach = get_breach(session, breach_id)
    if breach.status == "closed":
        raise BreachConflict("closed", "this breach is closed")
    new: dict[str, object] = {}
    for name, value in (
        ("nature", nature),
        ("contact_point", contact_point),
        ("consequences", consequences),
        ("measures", measures),
    ):
        if value is not None:
            new[name] = _screen(name, value)
    if data_categories is not None:
        new["data_categories"] = _codes("data category", data_categories, DATA_CATEGORIES)
    if subject_categories is not None:
        new["subject_categories"] = _codes(
            "subject category", subject_categories, SUBJECT_CATEGORIES
        )
    for name, number in (("approx_subjects", approx_subjects), ("approx_records", approx_records)):
        if number is not None:
            if number < 0:
                raise BreachRefused("negative", f"{name} cannot be negative", field=name)
            new[name] = number
    if occurred_from is not None:
        new["occurred_from"] = _aware(occurred_from, "occurred_from")
    if occurred_to is not None:
        new["occurred_to"] = _aware(occurred_to, "occurred_to")
    if unintelligible is not None:
        if unintelligible and breach.scope_actor_id is not None:
            raise BreachRefused(
                "not_unintelligible",
                "a compromised staff account saw the data decrypted: it was not unintelligible",
                field="unintelligible",
            )
        new["unintelligible"] = unintelligible
    changed = [k for k, v in new.items() if getattr(breach, k) != v]
    if not changed:
        return []
    for k in changed:
        setattr(breach, k, new[k])
    if _any_notice(session, breach):
        breach.phase += 1
        session.add(
            BreachSupplement(
                breach_id=breach.id,
                phase=breach.phase,
                changed=json.dumps(sorted(changed)),
                created_by=actor,
            )
        )
    session.flush()
    audit.record(
        session,
        "breach.update",
        "breach",
        breach.id,
        details={"phase": breach.phase, "fields": "+".join(sorted(changed))},
    )
    return changed


def missing_fields(breach: Breach) -> list[str]:
    """The names of the Art. 33(3) contents still empty (empty when complete)."""
    out = []
    for name in CONTENT_FIELDS:
        value = getattr(breach, name)
        if value is None or value == "" or value == "[]":
            out.append(name)
    return out


def missing_fr(breach: Breach) -> list[str]:
    """The Art. 33(3) items still to come, in French (the notices and the register)."""
    return [_FIELD_FR[name] for name in missing_fields(breach)]


def missing_contents(breach: Breach) -> list[str]:
    """What Art. 33(3) still needs before a notification can go out (empty when complete)."""
    return [_REQUIRED_LABELS[name] for name in missing_fields(breach)]


# -- scope --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaffMember:
    id: uuid.UUID
    display_name: str
    role: str
    active: bool


def staff_members(session: Session) -> list[StaffMember]:
    """The staff accounts a breach can be scoped to, deactivated ones included (a compromised
    account is usually deactivated before its reads are looked at)."""
    _require_desk(session)
    rows = session.scalars(
        select(User).where(User.role.in_(list(STAFF_ROLES))).order_by(User.display_name)
    )
    return [StaffMember(u.id, u.display_name, u.role.value, u.active) for u in rows]


def user_by_email(session: Session, email: str) -> uuid.UUID:
    """The id of the user with this e-mail address (the command line names actors so)."""
    _require_desk(session)
    found = session.scalars(select(User.id).where(User.email == email.strip().lower())).first()
    if found is None:
        raise BreachRefused("unknown_actor", "no user with this e-mail address", field="actor")
    return found


@dataclass(frozen=True)
class ScopedSubject:
    account_id: uuid.UUID
    subject_id: uuid.UUID
    reads: int
    first_read_at: dt.datetime
    last_read_at: dt.datetime


@dataclass(frozen=True)
class Scope:
    actor_id: uuid.UUID
    start: dt.datetime
    end: dt.datetime
    subjects: list[ScopedSubject]
    records_by_account: dict[uuid.UUID, int]
    # List views, exports and lookups: people shown without being named one by one in the
    # log, per account (the number of records each showed).
    shown_by_account: dict[uuid.UUID, int] = field(default_factory=dict)
    # Exports of a whole account: every caller of that account is concerned.
    exported_accounts: frozenset[uuid.UUID] = frozenset()

    @property
    def accounts(self) -> list[uuid.UUID]:
        named = {s.account_id for s in self.subjects}
        return sorted(named | set(self.shown_by_account) | self.exported_accounts, key=str)


def reads_by_actor(
    session: Session, actor_id: uuid.UUID, start: dt.datetime, end: dt.datetime
) -> Scope:
    """Whose data did this actor touch between ``start`` and ``end``? From the audit log.

    Every action on personal data counts, not only reads: an entry that names a caller
    (a read, a message written, a call answered, an appointment moved…) makes that caller
    concerned; a list view, an export or a lookup (``BULK_ACTIONS``) makes its account
    concerned with the number of records it showed. Entries of the provider's own governance
    (sign-ins, contracts, the breach register) name no caller and no account data: they do not
    count. One query on the indexed ``actor_id`` and ``ts`` columns; the account of each entry
    comes from its hashed body. Nothing is decrypted.
    """
    start, end = _aware(start, "start"), _aware(end, "end")
    if end <= start:
        raise BreachRefused("window", "the end of the window must be after its start", field="end")
    rows = session.execute(
        select(AuditEntry.subject_id, AuditEntry.ts, AuditEntry.action, AuditEntry.body)
        .where(
            AuditEntry.actor_id == actor_id,
            AuditEntry.ts >= start,
            AuditEntry.ts <= end,
        )
        .order_by(AuditEntry.seq)
    ).all()
    per_subject: dict[uuid.UUID, list[dt.datetime]] = {}
    account_of: dict[uuid.UUID, uuid.UUID] = {}
    objects: dict[uuid.UUID, set[str]] = {}
    shown: dict[uuid.UUID, int] = {}
    exported: set[uuid.UUID] = set()
    for subject_id, ts, action, body in rows:
        data = json.loads(body)
        if not data.get("account"):
            continue
        account = uuid.UUID(data["account"])
        if subject_id is not None:
            per_subject.setdefault(subject_id, []).append(ts)
            account_of[subject_id] = account
            objects.setdefault(account, set()).add(str(data.get("object")))
        elif action in BULK_ACTIONS:
            count = data.get("details", {}).get(BULK_ACTIONS[action])
            number = count if isinstance(count, int) and count > 0 else 0
            if action == "account.export":
                exported.add(account)
            elif not number:
                continue  # a lookup that found no one, an empty agenda: nothing shown
            shown[account] = shown.get(account, 0) + number
    subjects = [
        ScopedSubject(account_of[s], s, len(times), min(times), max(times))
        for s, times in per_subject.items()
    ]
    subjects.sort(key=lambda s: (str(s.account_id), s.first_read_at))
    records = {a: len(o) for a, o in objects.items()}
    for account, number in shown.items():
        records[account] = records.get(account, 0) + number
    return Scope(actor_id, start, end, subjects, records, shown, frozenset(exported))


def scope_to_actor(
    session: Session,
    breach_id: uuid.UUID,
    *,
    actor_id: uuid.UUID,
    start: dt.datetime,
    end: dt.datetime,
) -> Scope:
    """Scope a breach to "this staff account was compromised between start and end".

    Records every caller whose data the account touched in the window as affected, per
    account, with counts (``reads_by_actor``); the breach's approximate numbers are set from
    them. The data was seen decrypted: the breach is no longer "unintelligible" (34(3)(a)).
    """
    _require_desk(session)
    breach = get_breach(session, breach_id)
    # A staff account, or an API key (the audit log names a key's reads by its id).
    if session.get(User, actor_id) is None and (
        session.scalar(select(AuditEntry.seq).where(AuditEntry.actor_id == actor_id).limit(1))
        is None
    ):
        raise BreachRefused("unknown_actor", "no such user or API key", field="actor")
    scope = reads_by_actor(session, actor_id, start, end)
    breach.scope_actor_id, breach.scope_from, breach.scope_to = actor_id, scope.start, scope.end
    if breach.unintelligible:
        # A signed-in account saw the data decrypted: it was not unintelligible (34(3)(a)).
        update_contents(session, breach.id, unintelligible=False)
    by_account: dict[uuid.UUID, list[ScopedSubject]] = {a: [] for a in scope.accounts}
    for s in scope.subjects:
        by_account[s.account_id].append(s)
    for account_id, found in by_account.items():
        with acting_for(session, account_id):
            known = {
                row.subject_id: row
                for row in session.scalars(
                    select(BreachSubject).where(
                        BreachSubject.breach_id == breach.id,
                        BreachSubject.account_id == account_id,
                    )
                )
            }
            for s in found:
                row = known.get(s.subject_id)
                if row is None:
                    session.add(
                        BreachSubject(
                            breach_id=breach.id,
                            account_id=account_id,
                            subject_id=s.subject_id,
                            reads=s.reads,
                            first_read_at=s.first_read_at,
                            last_read_at=s.last_read_at,
                        )
                    )
                else:
                    row.reads = s.reads
                    row.first_read_at, row.last_read_at = s.first_read_at, s.last_read_at
            session.flush()
            named = (
                session.scalar(
                    select(func.count())
                    .select_from(BreachSubject)
                    .where(
                        BreachSubject.breach_id == breach.id,
                        BreachSubject.account_id == account_id,
                    )
                )
                or 0
            )
            if account_id in scope.exported_accounts:
                # The whole account was exported: every caller it holds is concerned.
                people = (
                    session.scalar(
                        select(func.count())
                        .select_from(Caller)
                        .where(Caller.account_id == account_id)
                    )
                    or 0
                )
            else:
                # People shown in list views and lookups are not named in the log: counted
                # on top of the named ones (an approximation from above, Art. 33(3)(a)).
                people = named + scope.shown_by_account.get(account_id, 0)
            _set_account_counts(
                session,
                breach,
                account_id,
                subjects=max(named, people),
                records=scope.records_by_account.get(account_id, 0),
            )
    impacts = _impacts(session, breach)
    update_contents(
        session,
        breach.id,
        approx_subjects=sum(i.subjects for i in impacts.values()),
        approx_records=sum(i.records for i in impacts.values()),
    )
    audit.record(
        session,
        "breach.scope",
        "breach",
        breach.id,
        details={
            "actor": actor_id,
            "accounts": len(scope.accounts),
            "subjects": len(scope.subjects),
        },
    )
    return scope


def _set_account_counts(
    session: Session, breach: Breach, account_id: uuid.UUID, *, subjects: int, records: int
) -> BreachAccount:
    row = session.scalars(
        select(BreachAccount).where(
            BreachAccount.breach_id == breach.id, BreachAccount.account_id == account_id
        )
    ).first()
    if row is None:
        row = BreachAccount(breach_id=breach.id, account_id=account_id)
        session.add(row)
    row.subjects, row.records = subjects, records
    session.flush()
    return row


def add_account(
    session: Session,
    breach_id: uuid.UUID,
    account_id: uuid.UUID,
    *,
    subjects: int = 0,
    records: int = 0,
) -> None:
    """Name an affected account by hand (a breach not scoped by the audit log)."""
    _require_desk(session)
    breach = get_breach(session, breach_id)
    if session.get(Account, account_id) is None:
        raise NotFound("no such account")
    if subjects < 0 or records < 0:
        raise BreachRefused("negative", "counts cannot be negative")
    with acting_for(session, account_id):
        _set_account_counts(session, breach, account_id, subjects=subjects, records=records)
        audit.record(
            session,
            "breach.account_add",
            "breach",
            breach.id,
            details={"subjects": subjects, "records": records},
        )
    impacts = _impacts(session, breach)
    update_contents(
        session,
        breach.id,
        approx_subjects=sum(i.subjects for i in impacts.values()),
        approx_records=sum(i.records for i in impacts.values()),
    )


def _impacts(session: Session, breach: Breach) -> dict[uuid.UUID, BreachAccount]:
    """The affected accounts (each read under its own account: row-level security)."""
    out: dict[uuid.UUID, BreachAccount] = {}
    for account_id in session.scalars(select(Account.id)):
        with acting_for(session, account_id):
            row = session.scalars(
                select(BreachAccount).where(
                    BreachAccount.breach_id == breach.id,
                    BreachAccount.account_id == account_id,
                )
            ).first()
        if row is not None:
            out[account_id] = row
    return out


def decide(
    session: Session, breach_id: uuid.UUID, decision: str, reason: str | None = None
) -> None:
    """``notify`` the controllers, or ``not_notified`` with a reason code (Art. 33(5)).

    ``not_notified`` is only for an incident that concerns no client's personal data: a
    breach affecting a client is notified to it whatever the risk (Art. 33(2)).
    """
    _require_desk(session)
    breach = get_breach(session, breach_id)
    if breach.status == "closed":
        raise BreachConflict("closed", "this breach is closed")
    if decision == "notify":
        if reason:
            raise BreachRefused("reason_not_taken", "a decision to notify takes no reason")
    elif decision == "not_notified":
        if reason not in NOT_NOTIFIED_REASONS:
            raise BreachRefused(
                "reason_needed",
                "not notifying needs a reason: one of " + ", ".join(NOT_NOTIFIED_REASONS),
                field="reason",
            )
        if _any_notice(session, breach):
            raise BreachConflict(
                "already_notified", "controllers were already notified of this breach"
            )
        if _impacts(session, breach):
            raise BreachConflict(
                "clients_affected",
                "this breach affects clients' data: each is notified (Art. 33(2)); the risk "
                "is theirs to judge",
            )
    else:
        raise BreachRefused("bad_decision", "decision must be notify or not_notified")
    breach.decision, breach.not_notified_reason = decision, reason
    audit.record(
        session, "breach.decide", "breach", breach.id, details={"decision": decision, "why": reason}
    )


def unnotified_accounts(session: Session, breach: Breach) -> list[uuid.UUID]:
    """The affected accounts that have not received the current phase of the notice."""
    out = []
    for account_id, _impact in _impacts(session, breach).items():
        with acting_for(session, account_id):
            sent = session.scalars(
                select(BreachNotice.id).where(
                    BreachNotice.breach_id == breach.id,
                    BreachNotice.account_id == account_id,
                    BreachNotice.phase == breach.phase,
                )
            ).first()
        if sent is None:
            out.append(account_id)
    return out


def close(session: Session, breach_id: uuid.UUID) -> None:
    """Close the breach. Refused while an affected client has not received the current phase
    (Art. 33(2)) or while the Art. 33(3) contents are incomplete; an incident concerning no
    client is closed once documented (``decide(…, "not_notified", reason)``)."""
    _require_desk(session)
    breach = get_breach(session, breach_id)
    if breach.status == "closed":
        raise BreachConflict("closed", "this breach is closed")
    impacts = _impacts(session, breach)
    if not impacts:
        if breach.decision != "not_notified":
            raise BreachConflict(
                "decide_first",
                "name the clients concerned and notify them, or document that no client's "
                "data is concerned, before closing the breach",
            )
    else:
        waiting = unnotified_accounts(session, breach)
        if waiting:
            slugs = sorted(
                a.slug for a in session.scalars(select(Account).where(Account.id.in_(waiting)))
            )
            raise BreachRefused(
                "clients_not_notified",
                f"{len(waiting)} client(s) concerned have not received the current notice",
                problems=slugs,
                fields=slugs,
            )
        missing = missing_fields(breach)
        if missing:
            raise BreachRefused(
                "contents_missing",
                "the breach cannot be closed: Art. 33(3) contents are missing",
                problems=[_REQUIRED_LABELS[name] for name in missing],
                fields=missing,
            )
    breach.status, breach.closed_at = "closed", utcnow()
    audit.record(session, "breach.close", "breach", breach.id)


# -- drafts and notification --------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    subject: str
    text: str


def _labels(codes_json: str, vocabulary: dict[str, str]) -> str:
    codes = json.loads(codes_json)
    return ", ".join(vocabulary.get(c, c) for c in codes) or "à préciser"


def _controller_name(session: Session, account: Account) -> str:
    try:
        _row, mandate = mandate_version(session, account.id)
    except NotFound:
        return account.name
    return mandate.controller.name


def controller_notice_draft(session: Session, breach_id: uuid.UUID, account_id: uuid.UUID) -> Draft:
    """The notification to one controller (Art. 33(2)), in French, for the current phase."""
    _require_desk(session)
    breach = get_breach(session, breach_id)
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound("no such account")
    with acting_for(session, account_id):
        impact = session.scalars(
            select(BreachAccount).where(
                BreachAccount.breach_id == breach.id, BreachAccount.account_id == account_id
            )
        ).first()
        if impact is None:
            raise NotFound("this account is not affected by the breach")
        controller = _controller_name(session, account)
        supplements = list(
            session.scalars(
                select(BreachSupplement)
                .where(BreachSupplement.breach_id == breach.id)
                .order_by(BreachSupplement.phase)
            )
        )
    cnil = cnil_clock(breach.aware_at, impact.notified_at or utcnow())
    text = render(
        "permanence.breaches",
        "controller_notice.txt",
        breach=breach,
        controller=controller,
        impact=impact,
        data_categories=_labels(breach.data_categories, DATA_CATEGORIES),
        subject_categories=_labels(breach.subject_categories, SUBJECT_CATEGORIES),
        cnil_due=cnil.due_at,
        supplement=next((s for s in supplements if s.phase == breach.phase), None),
        changed_labels=_changed_labels(supplements, breach.phase),
        missing=missing_fr(breach),
    )
    phase = f", phase {breach.phase}" if breach.phase > 1 else ""
    return Draft(f"Violation de données personnelles - réf. {breach.reference}{phase}", text)


_FIELD_FR = {
    "nature": "nature de la violation",
    "data_categories": "catégories de données",
    "subject_categories": "catégories de personnes",
    "approx_subjects": "nombre approximatif de personnes",
    "approx_records": "nombre approximatif d'enregistrements",
    "contact_point": "point de contact",
    "consequences": "conséquences probables",
    "measures": "mesures prises ou envisagées",
    "occurred_from": "début de l'incident",
    "occurred_to": "fin de l'incident",
    "unintelligible": "caractère inintelligible des données (art. 34(3)(a))",
}


def _changed_labels(supplements: list[BreachSupplement], phase: int) -> list[str]:
    for s in supplements:
        if s.phase == phase:
            return [_FIELD_FR.get(n, n) for n in json.loads(s.changed)]
    return []


def subjects_communication_draft(
    session: Session, breach_id: uuid.UUID, account_id: uuid.UUID
) -> Draft:
    """The communication to callers (Art. 34), in plain French, signed by the controller."""
    _require_desk(session)
    breach = get_breach(session, breach_id)
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound("no such account")
    with acting_for(session, account_id):
        try:
            _row, mandate = mandate_version(session, account_id)
            controller, contact = mandate.controller.name, mandate.controller.rights_contact
        except NotFound:
            controller, contact = account.name, breach.contact_point
    text = render(
        "permanence.breaches",
        "subjects_communication.txt",
        breach=breach,
        controller=controller,
        contact=contact,
        data_categories=_labels(breach.data_categories, DATA_CATEGORIES),
    )
    return Draft(f"{controller} : information sur un incident concernant vos données", text)


def notify_controllers(
    session: Session,
    breach_id: uuid.UUID,
    *,
    mailer: Mailer | None,
    portal_url: str,
    now: dt.datetime | None = None,
) -> list[BreachNotice]:
    """Send the current phase to every affected controller not yet told of it.

    The full notice is put on the client's portal; the e-mail (to the controller's contact and
    the account's client users) says only that a notification is waiting, with the link.
    A first notice may go out incomplete (Art. 33(4): information in phases): it needs the
    nature of the breach, names what is still to come, and later notices complete it.
    """
    actor = _require_desk(session)
    breach = get_breach(session, breach_id)
    if breach.status == "closed":
        raise BreachConflict("closed", "this breach is closed")
    if breach.decision == "not_notified":
        raise BreachConflict("not_to_notify", "this breach was documented as not to be notified")
    if not breach.nature.strip():
        raise BreachRefused(
            "nature_needed",
            "the first notice needs at least the nature of the breach (Art. 33(4))",
            field="nature",
        )
    impacts = _impacts(session, breach)
    if not impacts:
        raise BreachRefused(
            "no_account", "no affected account: scope the breach or add accounts first"
        )
    sent_at = now or utcnow()
    breach.decision = "notify"
    sent: list[BreachNotice] = []
    for account_id, impact in impacts.items():
        with acting_for(session, account_id):
            exists = session.scalars(
                select(BreachNotice.id).where(
                    BreachNotice.breach_id == breach.id,
                    BreachNotice.account_id == account_id,
                    BreachNotice.phase == breach.phase,
                )
            ).first()
            if exists is not None:
                continue
            account = session.get(Account, account_id)
            assert account is not None
            draft = controller_notice_draft(session, breach.id, account_id)
            recipients = controller_recipients(session, account) if mailer is not None else []
            link = f"{portal_url.rstrip('/')}/portail/violations/{breach.reference}"
            for to in recipients:
                mailer_text = (
                    f"Bonjour,\n\nUne notification de violation de données (réf. "
                    f"{breach.reference}, phase {breach.phase}) concernant votre compte vous "
                    f"attend sur votre portail :\n{link}\n\nElle vous est adressée au titre de "
                    "l'article 33(2) du RGPD ; votre propre délai de 72 heures pour notifier la "
                    "CNIL court à compter de sa réception.\n"
                )
                assert mailer is not None
                mailer.send(Mail(to=to, subject=draft.subject, text=mailer_text))
            notice = BreachNotice(
                breach_id=breach.id,
                account_id=account_id,
                phase=breach.phase,
                subject_line=draft.subject[:200],
                body=draft.text,
                emailed_to=len(recipients),
                sent_at=sent_at,
                sent_by=actor,
            )
            session.add(notice)
            if impact.notified_at is None:
                impact.notified_at = sent_at
            session.flush()
            audit.record(
                session,
                "breach.notify",
                "breach",
                breach.id,
                details={"phase": breach.phase, "emails": len(recipients)},
            )
            sent.append(notice)
    return sent


def notices_for_account(session: Session, reference: str | None = None) -> list[BreachNotice]:
    """The client's portal: breach notifications sent to the context's account (those of one
    breach when ``reference`` is given: the link of the e-mail)."""
    account_id = ctx_of(session).require_account()
    query = select(BreachNotice).where(BreachNotice.account_id == account_id)
    if reference is not None:
        query = query.join(Breach, Breach.id == BreachNotice.breach_id).where(
            Breach.reference == reference
        )
    return list(session.scalars(query.order_by(BreachNotice.sent_at.desc())))


def notice_references(session: Session, notices: Sequence[BreachNotice]) -> dict[uuid.UUID, str]:
    """The reference of each notice's breach (the portal links each notice to its page)."""
    ids = {n.breach_id for n in notices}
    if not ids:
        return {}
    rows = session.execute(select(Breach.id, Breach.reference).where(Breach.id.in_(ids)))
    return {breach_id: reference for breach_id, reference in rows}


def affected_subjects(session: Session, breach_id: uuid.UUID) -> list[BreachSubject]:
    """The callers of the context's account affected by a breach (ids; open them audited)."""
    account_id = ctx_of(session).require_account()
    return list(
        session.scalars(
            select(BreachSubject)
            .where(BreachSubject.breach_id == breach_id, BreachSubject.account_id == account_id)
            .order_by(BreachSubject.first_read_at)
        )
    )


# -- the register, for pages and exports ---------------------------------------------------


@dataclass(frozen=True)
class AccountImpact:
    account_id: uuid.UUID
    slug: str
    name: str
    subjects: int
    records: int
    notified_at: dt.datetime | None
    controller_clock: Clock
    cnil_clock: Clock
    notices: int
    # The notices sent to this controller, one per phase, oldest first.
    sent: tuple[BreachNotice, ...] = ()
    # Art. 34: the controller's own decision, as its client user recorded it.
    subjects_decision: str = "pending"
    subjects_reason: str | None = None
    subjects_decided_at: dt.datetime | None = None
    phase_sent: bool = False  # this controller has the current phase

    @property
    def subjects_decision_fr(self) -> str:
        text = SUBJECTS_DECISION_FR.get(self.subjects_decision, self.subjects_decision)
        if self.subjects_reason:
            text += " : " + SUBJECTS_REASONS.get(self.subjects_reason, self.subjects_reason)
        return text


@dataclass(frozen=True)
class BreachView:
    breach: Breach
    reference: str
    now: dt.datetime
    accounts: list[AccountImpact]
    missing: list[str]
    supplements: list[BreachSupplement]
    data_categories: list[str] = field(default_factory=list)
    subject_categories: list[str] = field(default_factory=list)

    @property
    def controller_clock(self) -> Clock:
        """The breach-level 24 h clock: met when the last affected controller was told."""
        times = [a.notified_at for a in self.accounts]
        met = None if not times or any(t is None for t in times) else max(t for t in times if t)
        return controller_clock(self.breach.aware_at, met)

    @property
    def cnil_clock(self) -> Clock:
        return cnil_clock(self.breach.aware_at, None)

    @property
    def missing_names(self) -> list[str]:
        """The Art. 33(3) items still to come, as field names (pages say them in words)."""
        return missing_fields(self.breach)

    @property
    def unnotified(self) -> list[AccountImpact]:
        """Affected clients that do not have the current phase of the notice."""
        return [a for a in self.accounts if not a.phase_sent]

    @property
    def status_fr(self) -> str:
        return STATUS_FR.get(self.breach.status, self.breach.status)

    @property
    def decision_fr(self) -> str:
        b = self.breach
        text = DECISION_FR.get(b.decision, b.decision)
        if b.not_notified_reason:
            reasons = {**NOT_NOTIFIED_REASONS, **FORMER_NOT_NOTIFIED_REASONS}
            text += " : " + reasons.get(b.not_notified_reason, b.not_notified_reason)
        return text

    def changed_fr(self, supplement: BreachSupplement) -> str:
        return ", ".join(_FIELD_FR.get(n, n) for n in json.loads(supplement.changed))

    @property
    def overdue(self) -> bool:
        if self.breach.decision == "not_notified":
            return False
        if self.breach.decision == "pending" and self.now > self.cnil_clock.due_at:
            return True
        return self.controller_clock.state(self.now) == "overdue" or (
            not self.accounts and self.now > self.controller_clock.due_at
        )


def breach_view(
    session: Session, breach_id: uuid.UUID, now: dt.datetime | None = None
) -> BreachView:
    _require_desk(session)
    breach = get_breach(session, breach_id)
    return _view(session, breach, now or utcnow())


def _view(session: Session, breach: Breach, now: dt.datetime) -> BreachView:
    impacts = []
    for account_id, row in _impacts(session, breach).items():
        account = session.get(Account, account_id)
        assert account is not None
        with acting_for(session, account_id):
            sent = tuple(
                session.scalars(
                    select(BreachNotice)
                    .where(
                        BreachNotice.breach_id == breach.id, BreachNotice.account_id == account_id
                    )
                    .order_by(BreachNotice.phase)
                )
            )
        impacts.append(
            AccountImpact(
                account_id,
                account.slug,
                account.name,
                row.subjects,
                row.records,
                row.notified_at,
                controller_clock(breach.aware_at, row.notified_at),
                cnil_clock(breach.aware_at, row.notified_at),
                len(sent),
                sent,
                row.subjects_decision,
                row.subjects_reason,
                row.subjects_decided_at,
                any(n.phase == breach.phase for n in sent),
            )
        )
    impacts.sort(key=lambda i: i.slug)
    supplements = list(
        session.scalars(
            select(BreachSupplement)
            .where(BreachSupplement.breach_id == breach.id)
            .order_by(BreachSupplement.phase)
        )
    )
    return BreachView(
        breach,
        breach.reference,
        now,
        impacts,
        missing_contents(breach),
        supplements,
        [DATA_CATEGORIES.get(c, c) for c in json.loads(breach.data_categories)],
        [SUBJECT_CATEGORIES.get(c, c) for c in json.loads(breach.subject_categories)],
    )


def register(session: Session, now: dt.datetime | None = None) -> list[BreachView]:
    """Every breach, newest first, with its clocks (the Art. 33(5) register)."""
    _require_desk(session)
    when = now or utcnow()
    breaches = session.scalars(select(Breach).order_by(Breach.aware_at.desc())).all()
    return [_view(session, b, when) for b in breaches]


def export_html(session: Session, breach_ids: Sequence[uuid.UUID] | None = None) -> str:
    """The register (or some breaches of it) as one HTML document, dated."""
    views = register(session)
    if breach_ids is not None:
        wanted = set(breach_ids)
        views = [v for v in views if v.breach.id in wanted]
    audit.record(session, "breach.export", "breach", details={"breaches": len(views)})
    return render(
        "permanence.breaches",
        "register.html",
        views=views,
        now=utcnow(),
        clock_fr=CLOCK_STATE_FR,
        missing_fr=missing_fr,
        paris=paris,
    )


def active_account_ids(session: Session) -> list[uuid.UUID]:
    return list(session.scalars(select(Account.id).where(Account.status == AccountStatus.ACTIVE)))
