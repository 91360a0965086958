"""The demo out of the box: no SMTP server, yet its e-mails are all there to read (the local
outbox, a Maildir), and no delivery fails or waits for a retry: the demo names no webhook
receiver that does not exist (README, "Demo data")."""

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
    assert "webhook" not in loaded

    counts = json.loads(run(initialised, "deliveries", "run", "--format", "json").stdout)

    assert counts["failed"] == 0 and counts["retrying"] == 0 and counts["sent"] > 10, counts
    box = mailbox.Maildir(settings.data_dir / "outbox", create=False)
    mails = list(box)
    assert len(mails) == counts["sent"]
    assert {m["To"] for m in mails} >= {
        "secretariat@cabinet-lefevre.example",
        "contact@plomberie-durand.example",
    }
    # Nothing is left to try again on a later pass.
    again = json.loads(run(initialised, "deliveries", "run", "--format", "json").stdout)
    assert again["failed"] == again["retrying"] == again["sent"] == 0, again
