"""Drafts and notification: the controller's notice, supplements in phases (Art. 33(4)), the
draft communication to callers (Art. 34)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.accounts.model import Account
from permanence.accounts.service import mandate_version
from permanence.audit import service as audit
from permanence.breaches.base import (
    _FIELD_FR,
    DATA_CATEGORIES,
    SUBJECT_CATEGORIES,
    BreachConflict,
    BreachRefused,
    _impacts,
    _require_desk,
)
from permanence.breaches.clocks import cnil_clock
from permanence.breaches.contents import get_breach, missing_fr
from permanence.breaches.model import (
    Breach,
    BreachAccount,
    BreachNotice,
    BreachSubject,
    BreachSupplement,
)
from permanence.contracts.service import controller_recipients
from permanence.db import acting_for, ctx_of, utcnow
from permanence.errors import NotFound
from permanence.mail import Mail, Mailer
from permanence.render import render


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
