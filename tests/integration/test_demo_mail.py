"""The demo out of the box: no SMTP server, yet its e-mails are all there to read (the local
outbox, a Maildir) and its webhook is signed with a secret the demo created."""

from __future__ import annotations

import json
import mailbox

from permanence.config import Settings
from tests.integration.test_cli import initialised, run

__all__ = ["initialised"]  # the fixture, shared with the command-line tests


def test_the_demo_delivers_its_mail_to_the_outbox(
    initialised: dict[str, str], settings: Settings
) -> None:
    assert "PERMANENCE_SMTP_HOST" not in initialised
    loaded = run(initialised, "demo").stdout
    assert "cabinet-moreau-avocats: webhook secret env:MOREAU_WEBHOOK_SECRET whsec_" in loaded

    counts = json.loads(run(initialised, "deliveries", "run", "--format", "json").stdout)

    assert counts["failed"] == 0 and counts["sent"] > 10, counts
    box = mailbox.Maildir(settings.data_dir / "outbox", create=False)
    mails = list(box)
    assert len(mails) == counts["sent"]
    assert {m["To"] for m in mails} >= {
        "secretariat@cabinet-lefevre.example",
        "contact@plomberie-durand.example",
    }
    # The webhook (a .example host nobody serves) is tried again later; never refused for
    # want of its secret.
    again = run(initialised, "deliveries", "run", "--format", "json").stdout
    assert json.loads(again)["failed"] == 0
