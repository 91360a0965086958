"""The demo's breach: one worked to its end, as the register should hold one
(docs/governance.md)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from permanence.accounts.model import Account
from permanence.context import AccessContext, Role
from permanence.runtime import Runtime
from permanence.staff.model import User


def demo_breach(rt: Runtime, now: dt.datetime, client_email: str) -> str:
    """A breach worked to its end, as the register should hold one: a notice e-mail sent to
    the wrong client address, the plumber notified within hours, its own Art. 34 decision
    recorded from its portal (by ``client_email``, the plumber's client user), then closed."""
    from permanence.breaches import controller as breach_controller
    from permanence.breaches import service as breaches

    aware = now - dt.timedelta(days=40)
    with rt.db.session(AccessContext.system("cli:demo"), readonly=True) as s:
        plumber = s.scalars(select(Account).where(Account.slug == "plomberie-durand")).one()
        client_user = s.scalars(select(User.id).where(User.email == client_email)).one()
    desk = AccessContext(role=Role.DPO, reason="cli:demo")
    with rt.db.session(desk) as s:
        b = breaches.open_breach(
            s,
            aware_at=aware,
            nature="Avis de nouveau message envoyé par erreur à une adresse périmée du client "
            "(l'avis ne contient aucune donnée de l'appelant, seulement un lien)",
            occurred_from=aware - dt.timedelta(hours=2),
            occurred_to=aware - dt.timedelta(hours=2),
        )
        breaches.add_account(s, b.id, plumber.id, subjects=1, records=1)
        breaches.update_contents(
            s,
            b.id,
            data_categories=["message_content"],
            subject_categories=["callers"],
            contact_point="dpo@permanence.example",
            consequences="Aucune donnée de l'appelant lisible sans connexion au portail",
            measures="Adresse retirée des destinataires ; lien du portail soumis à connexion",
        )
        breaches.notify_controllers(
            s,
            b.id,
            mailer=None,
            portal_url=rt.settings.public_base_url,
            now=aware + dt.timedelta(hours=3),
        )
        reference = b.reference
    client = AccessContext(
        role=Role.CLIENT, reason="cli:demo", actor_id=client_user, account_id=plumber.id
    )
    with rt.db.session(client) as s:
        breach_controller.record_subjects_decision(s, reference, "not_required", "no_high_risk")
    with rt.db.session(desk) as s:
        breaches.close(s, breaches.breach_by_reference(s, reference).id)
    return (
        f"breach {reference}: notified to plomberie-durand, its Art. 34 decision recorded, closed"
    )
