"""E-mail through a real SMTP server; personal data refused at the door."""

from __future__ import annotations

import pytest

from permanence.config import Settings
from permanence.errors import ValidationFailed
from permanence.mail import Mail, SmtpMailer
from tests.conftest import SmtpSink


def test_mail_arrives(settings: Settings, smtp: SmtpSink) -> None:
    SmtpMailer(settings).send(
        Mail(to="secretariat@cabinet.example", subject="Nouveau message", text="Voir le portail.")
    )
    assert len(smtp.messages) == 1
    frm, to, _raw = smtp.messages[0]
    assert (frm, to) == ("permanence@permanence.example", ["secretariat@cabinet.example"])
    assert "Voir le portail." in smtp.bodies()[0]


@pytest.mark.parametrize("leak", ["rappeler le 06 12 34 56 78", "écrire à marie@exemple.fr"])
def test_mail_with_personal_data_is_refused(settings: Settings, smtp: SmtpSink, leak: str) -> None:
    with pytest.raises(ValidationFailed):
        SmtpMailer(settings).send(Mail(to="s@cabinet.example", subject="Message", text=leak))
    assert smtp.messages == []
