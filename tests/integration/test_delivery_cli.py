"""The delivery commands, run as an operator would."""

from __future__ import annotations

import datetime as dt

from permanence.config import Settings
from permanence.delivery import webhook_secrets as delivery
from permanence.runtime import Runtime
from tests.conftest import SmtpSink, cli_env
from tests.factories import ctx_for, make_account, make_caller
from tests.integration.test_cli import run
from tests.integration.test_delivery import VALUES


def test_webhook_secret_is_printed_once_and_rotates(settings: Settings, rt: Runtime) -> None:
    account = make_account(rt, "plomberie-durand")
    env = cli_env(settings)
    ref = "env:DURAND_WEBHOOK_SECRET"
    first = run(env, "webhook", "secret", "--account", "plomberie-durand", "--name", ref)
    second = run(env, "webhook", "secret", "--account", "plomberie-durand", "--name", ref)
    assert "version 1" in first.stdout and "version 2" in second.stdout
    old, new = first.stdout.split()[-1], second.stdout.split()[-1]
    assert old.startswith("whsec_") and new.startswith("whsec_") and old != new
    with rt.db.session(ctx_for(account.id)) as s:
        secrets = delivery.signing_secrets(s, rt.keyring, ref, dt.datetime.now(dt.UTC))
    assert secrets == [new.encode(), old.encode()]
    bad = run(
        env, "webhook", "secret", "--account", "plomberie-durand", "--name", "s3cr3t", ok=False
    )
    assert bad.returncode == 2 and "secret_ref" in bad.stderr
    missing = run(env, "webhook", "secret", "--account", "nobody", "--name", ref, ok=False)
    assert missing.returncode == 2


def test_deliveries_run_sends_what_is_due_and_prints_counts(
    settings: Settings, rt: Runtime, smtp: SmtpSink
) -> None:
    from permanence.messages import service as messages

    account = make_account(rt, "plomberie-durand")
    caller = make_caller(rt, account.id)
    with rt.db.session(ctx_for(account.id)) as s:
        messages.take_message(
            s, rt.keyring, caller_id=caller, purpose="intervention", values=VALUES
        )
    env = cli_env(settings)
    env["PERMANENCE_SMTP_HOST"] = "127.0.0.1"
    env["PERMANENCE_SMTP_PORT"] = str(smtp.port)
    out = run(env, "deliveries", "run").stdout
    assert "sent=1" in out and "failed=0" in out
    assert len(smtp.messages) == 1
    assert "sent=0" in run(env, "deliveries", "run").stdout
