"""Delivering messages to clients: real SMTP, HTTPS webhook and SMS gateway servers, the
ledger, retries, escalation along the on-call list and Art. 19 change notices."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from permanence.accounts.service import import_mandate
from permanence.config import Settings
from permanence.context import Role
from permanence.delivery import ledger, webhook_secrets
from permanence.delivery import service as delivery
from permanence.delivery.model import Status
from permanence.delivery.ports import HttpSmsGateway, HttpWebhookSender
from permanence.delivery.worker import Channels, run_due
from permanence.errors import NotFound
from permanence.mail import mailer_for
from permanence.mandates.oncall import PARIS
from permanence.messages import service as messages
from permanence.messages.model import Message
from permanence.runtime import Runtime
from tests.conftest import SmtpSink
from tests.factories import ctx_for, demo_mandate_text, make_account, make_caller
from tests.servers import HttpSink

SLUG = "plomberie-durand"
VALUES = {
    "last_name": "Martin",
    "phone": "01 99 00 12 34",
    "address": "3 rue des Lilas, 44000 Nantes",
    "urgency": "à planifier",
    "description": "Fuite sous l'évier, rappeler après 18h",
}
# Every way the caller's data could leak: the message's values and the caller's identity
# as registered by make_caller.
LEAKS = [
    "Martin",
    "Camille",
    "01 99 00 12 34",
    "0199001234",
    "+33199001234",
    "Lilas",
    "Fuite",
    "évier",
    "06 39 98 12 34",
    "0639981234",
    "+33639981234",
    "camille.martin@exemple.fr",
]
SECRET_REF = "env:DURAND_WEBHOOK_SECRET"
CONTACTS = [
    {"name": "Marc Durand", "phone": "+33600000003", "email": "marc@plomberie-durand.example",
     "from": "00:00", "to": "12:00"},
    {"name": "Julien Durand", "phone": "+33600000004", "from": "12:00", "to": "00:00"},
    {"name": "Léa Durand", "phone": "+33600000005", "email": "lea@plomberie-durand.example",
     "from": "03:00", "to": "04:00"},
]  # fmt: skip


@pytest.fixture
def webhook_sink(tmp_path: Path) -> Iterator[HttpSink]:
    tls = tmp_path / "tls"
    tls.mkdir()
    sink = HttpSink(tls_dir=tls).start()
    yield sink
    sink.stop()


@pytest.fixture
def sms_sink() -> Iterator[HttpSink]:
    sink = HttpSink(default=201).start()
    yield sink
    sink.stop()


def _account(
    rt: Runtime,
    *,
    webhook: HttpSink | None = None,
    on_call: dict[str, Any] | None = None,
    slug: str = SLUG,
    zone: str | None = None,
) -> uuid.UUID:
    """The plumber's account; its mandate gets a webhook and the given on-call list (none
    unless given, so that tests moving the clock do not escalate by accident)."""
    account = make_account(rt, slug)
    doc = yaml.safe_load(demo_mandate_text(slug))
    doc["recipients"] = [r for r in doc["recipients"] if r["kind"] != "webhook"]
    if webhook is not None:
        doc["recipients"].append(
            {"kind": "webhook", "url": webhook.url("/hooks/permanence"), "secret_ref": SECRET_REF}
        )
    doc.pop("on_call", None)
    doc.pop("after_hours", None)  # forwarding out of hours needs the on-call list
    if on_call is not None:
        doc["on_call"] = on_call
    if zone is not None:
        doc["hours"]["timezone"] = zone
    with rt.db.session(ctx_for(account.id, Role.ADMIN)) as s:
        import_mandate(s, doc, account_id=account.id)
    return account.id


def _secret(rt: Runtime, account_id: uuid.UUID) -> bytes:
    with rt.db.session(ctx_for(account_id, Role.ADMIN)) as s:
        secret, _version = webhook_secrets.set_webhook_secret(s, rt.keyring, SECRET_REF)
    return secret.encode()


def _take(rt: Runtime, account_id: uuid.UUID, *, urgent: bool = False) -> Message:
    caller = make_caller(rt, account_id)
    with rt.db.session(ctx_for(account_id)) as s:
        return messages.take_message(
            s, rt.keyring, caller_id=caller, purpose="intervention", values=VALUES, urgent=urgent
        )


def _ledger(rt: Runtime, account_id: uuid.UUID, message_id: uuid.UUID) -> dict[str, Any]:
    """Rows by "event/channel" (the last one when several)."""
    with rt.db.session(ctx_for(account_id, Role.CLIENT), readonly=True) as s:
        return {f"{e.event}/{e.channel}": e for e in ledger.ledger(s, message_id)}


def _channels(
    settings: Settings, webhook: HttpSink | None = None, sms: HttpSink | None = None
) -> Channels:
    verify = webhook.client_tls if webhook and webhook.client_tls else True
    gateway = None
    if sms is not None:
        gateway = HttpSmsGateway(
            sms.url("/2010-04-01/Accounts/AC123/Messages.json"),
            sender="PERMANENCE",
            user="AC123",
            password="gateway-token",
        )
    return Channels(
        mailer=mailer_for(settings), webhooks=HttpWebhookSender(verify=verify), sms=gateway
    )


def _assert_no_leak(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, leak


# -- e-mail and portal ------------------------------------------------------------------------


def test_new_message_mail_arrives_with_a_portal_link_and_no_caller_data(
    rt: Runtime, smtp: SmtpSink
) -> None:
    account_id = _account(rt)
    msg = _take(rt, account_id)

    counts = run_due(rt, channels=_channels(rt.settings))

    assert counts["sent"] == 1
    assert len(smtp.messages) == 1
    _frm, to, raw = smtp.messages[0]
    assert to == ["contact@plomberie-durand.example"]
    body = smtp.bodies()[0]
    assert "Nouveau message pour Plomberie Durand" in body
    assert f"http://127.0.0.1:8000/portail/messages/{msg.id}" in body
    _assert_no_leak(body)
    _assert_no_leak(raw.decode("utf-8", "replace"))
    rows = _ledger(rt, account_id, msg.id)
    assert rows["new/email"].status == "sent" and rows["new/email"].sent_at is not None
    assert rows["new/portal"].status == "delivered"


def test_nothing_is_sent_twice(rt: Runtime, smtp: SmtpSink) -> None:
    account_id = _account(rt)
    _take(rt, account_id)
    run_due(rt, channels=_channels(rt.settings))
    again = run_due(
        rt, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=1), channels=_channels(rt.settings)
    )
    assert again["sent"] == 0
    assert len(smtp.messages) == 1


def test_client_viewing_then_acknowledging_is_in_the_ledger(rt: Runtime) -> None:
    account_id = _account(rt)
    msg = _take(rt, account_id)
    with rt.db.session(ctx_for(account_id, Role.CLIENT)) as s:
        delivery.mark_viewed(s, msg.id)
        delivery.mark_viewed(s, msg.id)  # a second view changes nothing
    assert _ledger(rt, account_id, msg.id)["new/portal"].status == "viewed"
    with rt.db.session(ctx_for(account_id, Role.CLIENT)) as s:
        acked = delivery.mark_acknowledged(s, msg.id)
        assert acked.acknowledged_at is not None and acked.status == "acknowledged"
    portal = _ledger(rt, account_id, msg.id)["new/portal"]
    assert portal.status == "acknowledged"
    assert portal.delivered_at <= portal.viewed_at <= portal.acknowledged_at


def test_another_accounts_message_is_not_found(rt: Runtime) -> None:
    account_id = _account(rt)
    msg = _take(rt, account_id)
    other = make_account(rt, "cabinet-moreau-avocats")
    with rt.db.session(ctx_for(other.id, Role.CLIENT)) as s:
        for call in (
            lambda: delivery.mark_viewed(s, msg.id),
            lambda: delivery.mark_acknowledged(s, msg.id),
            lambda: ledger.ledger(s, msg.id),
            lambda: ledger.recipients_of(s, msg.id),
            lambda: delivery.notify_recipients(s, msg.id, "erased"),
        ):
            with pytest.raises(NotFound):
                call()
    assert _ledger(rt, account_id, msg.id)["new/portal"].status == "delivered"


def test_one_pass_serves_every_account(rt: Runtime, smtp: SmtpSink) -> None:
    first = _account(rt)
    second = _account(rt, slug="cabinet-moreau-avocats")
    _take(rt, first)
    caller = make_caller(rt, second)
    with rt.db.session(ctx_for(second)) as s:
        messages.take_message(
            s, rt.keyring, caller_id=caller, purpose="message",
            values={"last_name": "Martin", "phone": "01 99 00 12 34", "subject": "autre",
                    "message": "Merci de me rappeler"},
        )  # fmt: skip
    counts = run_due(rt, channels=_channels(rt.settings))
    assert counts["sent"] == 2
    assert sorted(to[0] for _f, to, _r in smtp.messages) == [
        "contact@plomberie-durand.example",
        "secretariat@moreau-avocats.example",
    ]


# -- webhooks ---------------------------------------------------------------------------------


def _check_signature(secret: bytes, header: str, body: bytes) -> int:
    """What an integrator writes, with nothing but the standard library."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    expected = hmac.new(secret, parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    return int(parts["t"])


def test_webhook_is_signed_and_carries_only_ids_and_metadata(
    rt: Runtime, webhook_sink: HttpSink
) -> None:
    account_id = _account(rt, webhook=webhook_sink)
    secret = _secret(rt, account_id)
    msg = _take(rt, account_id, urgent=True)
    now = dt.datetime.now(dt.UTC)

    counts = run_due(rt, now=now, channels=_channels(rt.settings, webhook_sink))

    assert counts["delivered"] == 1
    (request,) = webhook_sink.received
    assert request.path == "/hooks/permanence"
    assert _check_signature(secret, request.headers["X-Permanence-Signature"], request.body) == int(
        now.timestamp()
    )
    data = json.loads(request.body)
    assert data == {
        "event": "message.created",
        "delivery_id": request.headers["X-Permanence-Delivery"],
        "message_id": str(msg.id),
        "account": SLUG,
        "portal_url": f"http://127.0.0.1:8000/portail/messages/{msg.id}",
        "purpose": "intervention",
        "created_at": msg.created_at.isoformat(),
        "urgent": True,
    }
    _assert_no_leak(request.body.decode())
    assert _ledger(rt, account_id, msg.id)["new/webhook"].status == "delivered"


def test_a_tampered_body_does_not_verify(rt: Runtime, webhook_sink: HttpSink) -> None:
    account_id = _account(rt, webhook=webhook_sink)
    secret = _secret(rt, account_id)
    _take(rt, account_id)
    run_due(rt, channels=_channels(rt.settings, webhook_sink))
    (request,) = webhook_sink.received
    with pytest.raises(AssertionError):
        _check_signature(secret, request.headers["X-Permanence-Signature"], request.body + b" ")
    with pytest.raises(AssertionError):
        _check_signature(b"another secret", request.headers["X-Permanence-Signature"], request.body)


def test_webhook_500_is_retried_after_about_a_minute_then_delivered(
    rt: Runtime, webhook_sink: HttpSink
) -> None:
    account_id = _account(rt, webhook=webhook_sink)
    _secret(rt, account_id)
    msg = _take(rt, account_id)
    webhook_sink.statuses = [500]
    now = dt.datetime.now(dt.UTC)
    channels = _channels(rt.settings, webhook_sink)

    run_due(rt, now=now, channels=channels)
    row = _ledger(rt, account_id, msg.id)["new/webhook"]
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "http_500")
    assert now + dt.timedelta(seconds=54) <= row.next_attempt_at <= now + dt.timedelta(seconds=66)

    assert run_due(rt, now=now + dt.timedelta(seconds=30), channels=channels)["delivered"] == 0
    assert len(webhook_sink.received) == 1

    assert run_due(rt, now=now + dt.timedelta(minutes=2), channels=channels)["delivered"] == 1
    first, second = webhook_sink.received
    # The same delivery id both times: the receiver can de-duplicate.
    assert first.headers["X-Permanence-Delivery"] == second.headers["X-Permanence-Delivery"]
    row = _ledger(rt, account_id, msg.id)["new/webhook"]
    assert (row.status, row.attempts) == ("delivered", 2)
    with rt.db.session(ctx_for(account_id, Role.CLIENT), readonly=True) as s:
        history = [(e.status, e.attempt, e.error) for e in ledger.history(s, row.delivery_id)]
    assert history == [("pending", 0, None), ("pending", 1, "http_500"), ("delivered", 2, None)]


def test_webhook_fails_after_the_last_attempt_with_growing_delays(
    rt: Runtime, webhook_sink: HttpSink
) -> None:
    account_id = _account(rt, webhook=webhook_sink)
    _secret(rt, account_id)
    msg = _take(rt, account_id)
    webhook_sink.default = 503
    channels = _channels(rt.settings, webhook_sink)
    now = dt.datetime.now(dt.UTC)
    waits = []
    for _ in range(5):
        run_due(rt, now=now, channels=channels)
        row = _ledger(rt, account_id, msg.id)["new/webhook"]
        assert row.status == "pending"
        waits.append(row.next_attempt_at - now)
        now = row.next_attempt_at
    expected = [dt.timedelta(minutes=m) for m in (1, 5, 30, 120, 720)]
    for wait, base in zip(waits, expected, strict=True):
        assert base * 0.9 <= wait <= base * 1.1
    run_due(rt, now=now, channels=channels)
    row = _ledger(rt, account_id, msg.id)["new/webhook"]
    assert (row.status, row.attempts, row.last_error) == ("failed", 6, "http_503")
    assert row.failed_at == now and row.next_attempt_at is None
    run_due(rt, now=now + dt.timedelta(days=2), channels=channels)
    assert len(webhook_sink.received) == 6


def test_webhook_without_a_secret_is_not_sent_unsigned(rt: Runtime, webhook_sink: HttpSink) -> None:
    account_id = _account(rt, webhook=webhook_sink)
    msg = _take(rt, account_id)
    run_due(rt, channels=_channels(rt.settings, webhook_sink))
    assert webhook_sink.received == []
    assert _ledger(rt, account_id, msg.id)["new/webhook"].last_error == "secret_missing"


def test_after_a_rotation_both_secrets_sign_for_a_while(
    rt: Runtime, webhook_sink: HttpSink
) -> None:
    account_id = _account(rt, webhook=webhook_sink)
    old = _secret(rt, account_id)
    new = _secret(rt, account_id)
    _take(rt, account_id)
    run_due(rt, channels=_channels(rt.settings, webhook_sink))
    (request,) = webhook_sink.received
    header = request.headers["X-Permanence-Signature"]
    t = header.split(",")[0].removeprefix("t=")
    signatures = [p.removeprefix("v1=") for p in header.split(",")[1:]]
    for secret in (new, old):
        mac = hmac.new(secret, t.encode() + b"." + request.body, hashlib.sha256).hexdigest()
        assert mac in signatures


# -- escalation -------------------------------------------------------------------------------


def _expected_first_contact(at: dt.datetime) -> int:
    return 0 if at.astimezone(PARIS).hour < 12 else 1


def test_unacknowledged_message_escalates_along_the_on_call_list(
    rt: Runtime, smtp: SmtpSink, sms_sink: HttpSink
) -> None:
    account_id = _account(rt, on_call={"escalation_after": "PT30M", "contacts": CONTACTS})
    msg = _take(rt, account_id, urgent=True)
    channels = _channels(rt.settings, sms=sms_sink)
    start = msg.created_at
    run_due(rt, now=start + dt.timedelta(seconds=5), channels=channels)
    mails_before = len(smtp.messages)  # the e-mail notification itself
    assert mails_before == 1

    assert run_due(rt, now=start + dt.timedelta(minutes=29), channels=channels)["escalated"] == 0
    assert sms_sink.received == []

    at = start + dt.timedelta(minutes=31)
    first = _expected_first_contact(at)
    run_due(rt, now=at, channels=channels)
    phones = [c["phone"] for c in CONTACTS]
    (sms,) = sms_sink.received
    form = dict(x.split("=", 1) for x in sms.body.decode().split("&"))
    from urllib.parse import unquote_plus

    form = {k: unquote_plus(v) for k, v in form.items()}
    assert form == {
        "To": phones[first],
        "From": "PERMANENCE",
        "Body": "Permanence : message urgent non acquitté pour Plomberie Durand, voir le portail",
    }
    assert sms.headers["Authorization"].startswith("Basic ")
    _assert_no_leak(sms.body.decode())
    if CONTACTS[first].get("email"):
        assert smtp.messages[-1][1] == [CONTACTS[first]["email"]]
        _assert_no_leak(smtp.bodies()[-1])

    # The next contact in the list, one delay later; then the last; then nobody.
    at2 = at + dt.timedelta(minutes=30)
    assert run_due(rt, now=at2 - dt.timedelta(minutes=1), channels=channels)["escalated"] == 0
    run_due(rt, now=at2, channels=channels)
    run_due(rt, now=at2 + dt.timedelta(minutes=30), channels=channels)
    run_due(rt, now=at2 + dt.timedelta(days=1), channels=channels)
    alerted = [
        dict(x.split("=", 1) for x in r.body.decode().split("&"))["To"] for r in sms_sink.received
    ]
    order = [(first + k) % 3 for k in range(3)]
    assert [unquote_plus(p) for p in alerted] == [phones[i] for i in order]
    with rt.db.session(ctx_for(account_id, Role.CLIENT), readonly=True) as s:
        steps = sorted(
            (e.escalation_step, e.channel, e.recipient_index, e.status)
            for e in ledger.ledger(s, msg.id)
            if e.escalation_step
        )
    assert [(step, idx) for step, ch, idx, _ in steps if ch == "escalation_sms"] == [
        (1, order[0]), (2, order[1]), (3, order[2])
    ]  # fmt: skip
    assert all(status == "sent" for *_, status in steps)
    assert len(smtp.messages) - mails_before == sum(1 for i in order if CONTACTS[i].get("email"))


def test_acknowledgement_stops_the_escalation(rt: Runtime, sms_sink: HttpSink) -> None:
    account_id = _account(rt, on_call={"escalation_after": "PT30M", "contacts": CONTACTS})
    msg = _take(rt, account_id)
    channels = _channels(rt.settings, sms=sms_sink)
    with rt.db.session(ctx_for(account_id, Role.CLIENT)) as s:
        delivery.mark_acknowledged(s, msg.id)
    for minutes in (31, 61, 91, 24 * 60):
        counts = run_due(rt, now=msg.created_at + dt.timedelta(minutes=minutes), channels=channels)
        assert counts["escalated"] == 0
    assert sms_sink.received == []


def test_acknowledgement_cancels_alerts_not_yet_sent(rt: Runtime) -> None:
    account_id = _account(rt, on_call={"escalation_after": "PT30M", "contacts": CONTACTS})
    msg = _take(rt, account_id)
    no_gateway = Channels(mailer=None, webhooks=HttpWebhookSender(), sms=None)
    run_due(rt, now=msg.created_at + dt.timedelta(minutes=31), channels=no_gateway)
    assert _ledger(rt, account_id, msg.id)["new/escalation_sms"].last_error == "sms_not_configured"
    with rt.db.session(ctx_for(account_id, Role.CLIENT)) as s:
        delivery.mark_acknowledged(s, msg.id)
    sms = _ledger(rt, account_id, msg.id)["new/escalation_sms"]
    assert (sms.status, sms.last_error) == ("cancelled", "acknowledged")


def test_no_contact_on_call_waits_for_the_next_window(rt: Runtime, sms_sink: HttpSink) -> None:
    night = [{"name": "Julien Durand", "phone": "+33600000004", "from": "22:00", "to": "07:00"}]
    account_id = _account(rt, on_call={"escalation_after": "PT15M", "contacts": night})
    msg = _take(rt, account_id)
    channels = _channels(rt.settings, sms=sms_sink)
    local = msg.created_at.astimezone(PARIS)
    # A moment after the delay when nobody is on call (12:00 local, the next day if needed).
    noon = local.replace(hour=12, minute=0, second=0, microsecond=0)
    if noon < local + dt.timedelta(minutes=15):
        noon += dt.timedelta(days=1)
    assert run_due(rt, now=noon.astimezone(dt.UTC), channels=channels)["escalated"] == 0
    evening = noon.replace(hour=22, minute=0, second=30)
    assert run_due(rt, now=evening.astimezone(dt.UTC), channels=channels)["escalated"] == 1
    assert len(sms_sink.received) == 1


def test_the_escalation_reads_the_rota_in_the_zone_of_the_mandates_hours(
    rt: Runtime, sms_sink: HttpSink
) -> None:
    """A client in Martinique (UTC-4): its evening contact is on call at 19:00 there, which is
    midnight or 01:00 in Paris — the escalation used to read the rota in Paris time and wait."""
    zone = ZoneInfo("America/Martinique")
    evening = [{"name": "Julien Durand", "phone": "+33600000004", "from": "18:00", "to": "23:00"}]
    account_id = _account(
        rt, on_call={"escalation_after": "PT15M", "contacts": evening}, zone=zone.key
    )
    msg = _take(rt, account_id)
    channels = _channels(rt.settings, sms=sms_sink)
    local = msg.created_at.astimezone(zone)
    at = local.replace(hour=19, minute=0, second=0, microsecond=0)
    if at < local + dt.timedelta(minutes=15):
        at += dt.timedelta(days=1)
    assert run_due(rt, now=at.astimezone(dt.UTC), channels=channels)["escalated"] == 1
    (sms,) = sms_sink.received
    assert "To=%2B33600000004" in sms.body.decode()
    # Nobody on call at 10:00 there: the clock waits for 18:00 Martinique time.
    other = _take(rt, account_id)
    morning = (at + dt.timedelta(days=1)).replace(hour=10)
    run_due(rt, now=morning.astimezone(dt.UTC), channels=channels)
    with rt.db.session(ctx_for(account_id, Role.CLIENT), readonly=True) as s:
        from permanence.delivery.model import Escalation

        clock = s.query(Escalation).filter_by(message_id=other.id).one()
    assert clock.next_at is not None
    assert clock.next_at.astimezone(zone) == morning.replace(hour=18)


# -- Art. 19: change notices ------------------------------------------------------------------


@pytest.mark.gdpr("Art. 19")
def test_change_notice_goes_to_exactly_the_recipients_that_received_the_message(
    rt: Runtime, smtp: SmtpSink, webhook_sink: HttpSink
) -> None:
    account_id = _account(rt, webhook=webhook_sink)
    _secret(rt, account_id)
    received = _take(rt, account_id)
    webhook_sink.default = 503  # the webhook never gets it
    channels = _channels(rt.settings, webhook_sink)
    now = dt.datetime.now(dt.UTC)
    run_due(rt, now=now, channels=channels)

    with rt.db.session(ctx_for(account_id, Role.DPO)) as s:
        notices = delivery.notify_recipients(s, received.id, "rectified")
    assert sorted(n.channel for n in notices) == ["email", "portal"]

    webhook_sink.default = 200
    # The notices are due from when they were enqueued; the webhook's retry is a minute off.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    assert later < now + dt.timedelta(seconds=50)
    counts = run_due(rt, now=later, channels=channels)
    assert counts["sent"] == 1  # the notice e-mail; the webhook is not yet due again
    body = smtp.bodies()[-1]
    assert "Message rectifié pour Plomberie Durand" in body and "article 19" in body
    _assert_no_leak(body)
    rows = _ledger(rt, account_id, received.id)
    assert rows["rectified/email"].status == "sent"
    assert rows["rectified/portal"].status == "delivered"
    assert "rectified/webhook" not in rows

    with rt.db.session(ctx_for(account_id, Role.DPO), readonly=True) as s:
        recipients = ledger.recipients_of(s, received.id)
    assert [(r.channel, r.description) for r in recipients] == [
        ("portal", "portail"),
        ("email", "contact@plomberie-durand.example"),
    ]


def test_erasure_notice_cancels_what_was_not_sent_and_survives_the_message(
    rt: Runtime, smtp: SmtpSink, webhook_sink: HttpSink
) -> None:
    account_id = _account(
        rt, webhook=webhook_sink, on_call={"escalation_after": "PT30M", "contacts": CONTACTS}
    )
    _secret(rt, account_id)
    msg = _take(rt, account_id)
    webhook_sink.default = 503
    now = dt.datetime.now(dt.UTC)
    channels = _channels(rt.settings, webhook_sink)
    run_due(rt, now=now, channels=channels)

    with rt.db.session(ctx_for(account_id, Role.DPO)) as s:
        notices = delivery.notify_recipients(s, msg.id, "erased")
        s.delete(s.get(Message, msg.id))  # what the erasure does next
    assert sorted(n.channel for n in notices) == ["email", "portal"]

    counts = run_due(rt, now=msg.created_at + dt.timedelta(hours=2), channels=channels)
    assert counts["escalated"] == 0 and counts["sent"] == 1
    assert "Message effacé pour Plomberie Durand" in smtp.bodies()[-1]
    rows = _ledger(rt, account_id, msg.id)
    assert rows["new/webhook"].status == "cancelled"
    assert rows["new/webhook"].last_error == "message_erased"
    assert len(webhook_sink.received) == 1


def test_unknown_change_is_refused(rt: Runtime) -> None:
    account_id = _account(rt)
    msg = _take(rt, account_id)
    with rt.db.session(ctx_for(account_id, Role.DPO)) as s, pytest.raises(Exception) as err:
        delivery.notify_recipients(s, msg.id, "forgotten")
    assert "rectified" in str(err.value)


def test_ledger_holds_no_personal_data(rt: Runtime, smtp: SmtpSink) -> None:
    account_id = _account(rt)
    msg = _take(rt, account_id)
    run_due(rt, channels=_channels(rt.settings))
    assert all(
        e.status in {s.value for s in Status} for e in _ledger(rt, account_id, msg.id).values()
    )
    _assert_no_leak(repr(list(_ledger(rt, account_id, msg.id).values())))


def test_the_serving_process_delivers_in_the_background_and_stops(
    rt: Runtime, smtp: SmtpSink
) -> None:
    import asyncio
    import threading

    from permanence.web.app import create_app

    account_id = _account(rt)
    _take(rt, account_id)
    rt.settings.delivery_interval = 0.05
    app = create_app(rt, deliveries=True)

    async def serve_a_moment() -> None:
        async with app.router.lifespan_context(app):
            for _ in range(200):
                if smtp.messages:
                    break
                await asyncio.sleep(0.05)

    asyncio.run(serve_a_moment())
    assert len(smtp.messages) == 1
    assert "permanence-delivery" not in [t.name for t in threading.enumerate()]


def test_the_loop_runs_the_housekeeping_it_is_handed_and_survives_a_failing_pass(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """The application hands the loop its housekeeping passes (stale calls, recording
    downloads, queue dispatch): each runs after the delivery pass, in order, and one that fails
    is logged by its name without stopping the next."""
    import threading

    from permanence.delivery.worker import DeliveryLoop

    ran: list[str] = []
    done = threading.Event()

    def failing(_rt: Runtime) -> dict[str, int]:
        ran.append("failing")
        raise RuntimeError("down")

    def counting(given: Runtime) -> dict[str, int]:
        assert given is rt
        ran.append("counting")
        done.set()
        return {"done": 1}

    loop = DeliveryLoop(rt, 0.05, passes=[("failing", failing), ("counting", counting)])
    with caplog.at_level("INFO", logger="permanence.delivery"):
        loop.start()
        assert done.wait(10)
        loop.stop()
    assert ran[:2] == ["failing", "counting"]
    assert "failing pass failed" in caplog.text
    assert "counting: {'done': 1}" in caplog.text


def test_the_application_alone_starts_no_worker(rt: Runtime) -> None:
    import asyncio
    import threading

    from permanence.web.app import create_app

    app = create_app(rt)

    async def serve() -> list[str]:
        async with app.router.lifespan_context(app):
            return [t.name for t in threading.enumerate()]

    assert "permanence-delivery" not in asyncio.run(serve())


def test_a_mandate_cannot_sign_with_the_services_own_settings(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    account_id = _account(rt)
    monkeypatch.setenv("PERMANENCE_MASTER_KEY", "not-for-webhooks")
    monkeypatch.setenv("DURAND_WEBHOOK_SECRET", "client-secret")
    with rt.db.session(ctx_for(account_id)) as s:
        now = dt.datetime.now(dt.UTC)
        assert (
            webhook_secrets.signing_secrets(s, rt.keyring, "env:PERMANENCE_MASTER_KEY", now) == []
        )
        assert webhook_secrets.signing_secrets(s, rt.keyring, SECRET_REF, now) == [b"client-secret"]


def test_an_acknowledgement_recorded_elsewhere_also_stops_the_escalation(
    rt: Runtime, sms_sink: HttpSink
) -> None:
    account_id = _account(rt, on_call={"escalation_after": "PT30M", "contacts": CONTACTS})
    msg = _take(rt, account_id)
    with rt.db.session(ctx_for(account_id, Role.CLIENT)) as s:
        s.get(Message, msg.id).acknowledged_at = dt.datetime.now(dt.UTC)  # type: ignore[union-attr]
    channels = _channels(rt.settings, sms=sms_sink)
    assert (
        run_due(rt, now=msg.created_at + dt.timedelta(hours=1), channels=channels)["escalated"] == 0
    )
    assert sms_sink.received == []
    with rt.db.session(ctx_for(account_id, Role.CLIENT)) as s:
        delivery.mark_acknowledged(s, msg.id)
    assert _ledger(rt, account_id, msg.id)["new/portal"].status == "acknowledged"
