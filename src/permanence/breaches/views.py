"""The register as pages and exports read it: one view per breach with its clocks, the HTML
export."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account, AccountStatus
from permanence.audit import service as audit
from permanence.breaches.base import (
    _FIELD_FR,
    CLOCK_STATE_FR,
    DATA_CATEGORIES,
    DECISION_FR,
    FORMER_NOT_NOTIFIED_REASONS,
    NOT_NOTIFIED_REASONS,
    STATUS_FR,
    SUBJECT_CATEGORIES,
    SUBJECTS_DECISION_FR,
    SUBJECTS_REASONS,
    _impacts,
    _require_desk,
)
from permanence.breaches.clocks import Clock, cnil_clock, controller_clock
from permanence.breaches.contents import get_breach, missing_contents, missing_fields, missing_fr
from permanence.breaches.model import Breach, BreachNotice, BreachSupplement
from permanence.db import acting_for, utcnow
from permanence.render import paris, render


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
