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


# After a change of credentials, the owner is told (OWASP ASVS 5.0 6.3.7): no link to follow.
_NOTICES = {
    "password_changed": (
        "Permanence : votre mot de passe a été changé",
        "Bonjour,\n\n"
        "Le mot de passe de votre compte Permanence vient d'être changé, et vos autres sessions "
        "ont été fermées.\n\n"
        "Si ce n'était pas vous, utilisez tout de suite « Mot de passe oublié ? » sur la page de "
        "connexion et prévenez votre administrateur.\n",
    ),
    "second_factor_changed": (
        "Permanence : votre double authentification a changé",
        "Bonjour,\n\n"
        "L'application d'authentification ou les codes de secours de votre compte Permanence "
        "viennent d'être remplacés, et vos autres sessions ont été fermées.\n\n"
        "Si ce n'était pas vous, prévenez tout de suite votre administrateur.\n",
    ),
}


def send_notice(settings: Settings, kind: str, email: str) -> bool:
    """Tell the owner that a credential changed (``password_changed``,
    ``second_factor_changed``). False when it could not be sent (logged without the address)."""
    mailer = mailer_for(settings)
    if mailer is None:
        return False
    subject, text = _NOTICES[kind]
    try:
        mailer.send(Mail(to=email, subject=subject, text=text))
    except (OSError, ValidationFailed) as exc:
        log.warning("sign-in notice (%s) not sent: %s", kind, type(exc).__name__)
        return False
    return True


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
