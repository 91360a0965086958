"""The provider as the processor, as the contract on the SCC (``scc``) and the records of
processing (``compliance.art30``) both name it: its name, address and contact from the
settings, its DPO from the staff. Here, below the records that read it (ADR 0038)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from permanence.config import Settings
from permanence.context import Role
from permanence.staff.model import User


def name_and_address(settings: Settings) -> str:
    """The provider's name and address, from the settings."""
    return ", ".join(p for p in (settings.provider_name, settings.provider_address) if p)


def provider_identity(settings: Settings) -> str:
    """Art. 30(2)(a): the processor's name and contact details, from the settings."""
    text = name_and_address(settings)
    if settings.provider_contact_email:
        text += f" ; contact : {settings.provider_contact_email}"
    return text


def provider_dpo(session: Session, settings: Settings) -> str:
    """The provider's DPO: its active DPO users, else its contact address."""
    dpos = session.scalars(
        select(User).where(User.role == Role.DPO, User.active.is_(True)).order_by(User.email)
    ).all()
    if dpos:
        return " ; ".join(f"{u.display_name} <{u.email}>" for u in dpos)
    return settings.provider_contact_email
