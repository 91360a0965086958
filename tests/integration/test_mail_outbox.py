"""With no SMTP server configured, mail goes to a Maildir under the data directory (read here
with Python's ``mailbox``); with one configured, nothing changes."""

from __future__ import annotations

import mailbox

import pytest

from permanence.config import Settings
from permanence.delivery.worker import Channels, run_due
from permanence.errors import ValidationFailed
from permanence.mail import Mail, MaildirMailer, SmtpMailer, mailer_for
from permanence.runtime import Runtime
from tests.conftest import SmtpSink
from tests.integration.test_delivery import _account, _assert_no_leak, _ledger, _take


def _outbox(settings: Settings) -> list[mailbox.MaildirMessage]:
    path = settings.data_dir / "outbox"
    if not path.exists():
        return []
    return list(mailbox.Maildir(path, create=False))


def test_a_new_message_notice_lands_in_the_outbox_without_smtp(rt: Runtime) -> None:
    assert rt.settings.smtp_host is None
    account_id = _account(rt)
    msg = _take(rt, account_id)

    counts = run_due(rt, channels=Channels.from_settings(rt.settings))

    assert counts["sent"] == 1 and counts.get("failed", 0) == 0
    [mail] = _outbox(rt.settings)
    assert mail["To"] == "contact@plomberie-durand.example"
    assert mail["Subject"] == "Nouveau message pour Plomberie Durand"
    rows = _ledger(rt, account_id, msg.id)
    assert rows["new/email"].status == "sent"
    assert mail["X-Permanence-Delivery"] == str(rows["new/email"].delivery_id)
    body = mail.get_payload(decode=True).decode()
    assert f"/portail/messages/{msg.id}" in body
    _assert_no_leak(body)
    assert (rt.settings.data_dir / "outbox").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("leak", ["rappeler le 06 12 34 56 78", "écrire à marie@exemple.fr"])
def test_the_guard_refuses_personal_data_in_the_outbox_too(settings: Settings, leak: str) -> None:
    mailer = mailer_for(settings)
    assert isinstance(mailer, MaildirMailer)
    with pytest.raises(ValidationFailed):
        mailer.send(Mail(to="s@cabinet.example", subject="Message", text=leak))
    assert _outbox(settings) == []
    mailer.send(Mail(to="s@cabinet.example", subject="Message", text="Voir le portail."))
    assert [m["Subject"] for m in _outbox(settings)] == ["Message"]


def test_with_smtp_configured_mail_goes_to_the_server_only(
    settings: Settings, smtp: SmtpSink
) -> None:
    mailer = mailer_for(settings)
    assert isinstance(mailer, SmtpMailer)
    mailer.send(Mail(to="s@cabinet.example", subject="Message", text="Voir le portail."))
    assert len(smtp.messages) == 1
    assert _outbox(settings) == []
