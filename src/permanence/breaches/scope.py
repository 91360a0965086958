"""The scope from the audit log (whose data an actor read between two times), the accounts
concerned, the decisions, closing."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account
from permanence.audit import service as audit
from permanence.audit.model import AuditEntry
from permanence.breaches.base import (
    _REQUIRED_LABELS,
    BULK_ACTIONS,
    NOT_NOTIFIED_REASONS,
    BreachConflict,
    BreachRefused,
    _aware,
    _impacts,
    _require_desk,
)
from permanence.breaches.contents import _any_notice, get_breach, missing_fields, update_contents
from permanence.breaches.model import Breach, BreachAccount, BreachNotice, BreachSubject
from permanence.context import STAFF_ROLES
from permanence.db import acting_for, utcnow
from permanence.errors import NotFound
from permanence.staff.model import User
from permanence.subjects.model import Caller


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
