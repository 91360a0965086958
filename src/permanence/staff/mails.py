"""The e-mails of sign-in: reset and unlock links. In French (the interface's first language),
with nothing personal in them: no name, no address but the recipient's, only the link."""

from __future__ import annotations

import logging

from permanence.config import Settings
from permanence.errors import ValidationFailed
from permanence.mail import Mail, mailer_for
from permanence.staff.credentials import Link

log = logging.getLogger("permanence.staff")

RESET_PATH = "/connexion/reinitialiser/"
UNLOCK_PATH = "/connexion/deverrouiller/"

_TEXTS = {
    "reset": (
        "Permanence : choisir un nouveau mot de passe",
        "Bonjour,\n\n"
        "Quelqu'un (vous, sans doute) a demandé à changer le mot de passe de votre compte "
        "Permanence. Pour en choisir un nouveau, ouvrez ce lien dans les 30 minutes :\n\n"
        "{url}\n\n"
        "Le lien ne sert qu'une fois. Si vous n'êtes pas à l'origine de cette demande, ignorez "
        "ce message : votre mot de passe reste le même.\n",
    ),
    "admin_reset": (
        "Permanence : votre mot de passe a été réinitialisé",
        "Bonjour,\n\n"
        "Un administrateur a réinitialisé le mot de passe de votre compte Permanence : "
        "l'ancien ne fonctionne plus. Pour en choisir un nouveau, ouvrez ce lien dans les "
        "24 heures :\n\n"
        "{url}\n\n"
        "Le lien ne sert qu'une fois. Si vous n'attendiez pas ce message, prévenez votre "
        "administrateur.\n",
    ),
    "unlock": (
        "Permanence : votre compte est verrouillé",
        "Bonjour,\n\n"
        "Votre compte Permanence a été verrouillé après plusieurs tentatives de connexion "
        "échouées. Si c'était vous, ouvrez ce lien pour le déverrouiller (valable 24 heures, "
        "une seule fois) :\n\n"
        "{url}\n\n"
        "Si ce n'était pas vous, quelqu'un essaie peut-être de deviner votre mot de passe : "
        "après avoir déverrouillé le compte, changez-le, et prévenez votre administrateur.\n",
    ),
}


def link_url(settings: Settings, kind: str, token: str) -> str:
    path = UNLOCK_PATH if kind == "unlock" else RESET_PATH
    return f"{settings.public_base_url.rstrip('/')}{path}{token}"


def send_link(settings: Settings, kind: str, link: Link) -> bool:
    """E-mail ``link`` (``reset``, ``admin_reset`` or ``unlock``). False when no SMTP server
    is configured or the server refused it (logged without the address or the link)."""
    mailer = mailer_for(settings)
    if mailer is None:
        log.warning("sign-in e-mail (%s) not sent: no SMTP server configured", kind)
        return False
    subject, text = _TEXTS[kind]
    url = link_url(settings, kind, link.token)
    try:
        mailer.send(Mail(to=link.email, subject=subject, text=text.format(url=url)))
    except (OSError, ValidationFailed) as exc:  # SMTP errors are OSErrors
        log.warning("sign-in e-mail (%s) not sent: %s", kind, type(exc).__name__)
        return False
    return True
