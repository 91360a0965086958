"""Delivery rules without a database: texts, signatures, back-off, on-call windows."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import random
import uuid

import pytest
import yaml

from permanence.delivery import channels
from permanence.delivery.model import Event
from permanence.delivery.service import MAX_ATTEMPTS, retry_delay
from permanence.mail import Mail, check_no_personal_data
from permanence.mandates.mandate import Mandate
from permanence.mandates.oncall import PARIS as LOCAL_TZ
from permanence.mandates.oncall import next_on_call_start, on_call_now
from permanence.mandates.sections import OnCallContact
from tests.factories import demo_mandate_text

MESSAGE_ID = uuid.UUID("6f1c1d2e-1111-4222-8333-944455556666")
NOW = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)


def _contact(start: str, end: str, phone: str = "+33600000001") -> OnCallContact:
    return OnCallContact.model_validate({"name": "X", "phone": phone, "from": start, "to": end})


def _paris(y: int, m: int, d: int, h: int, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, tzinfo=LOCAL_TZ)


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"event":"message.created"}'
    header = channels.signature([b"s3cret"], body, 1767225600)
    mac = hmac.new(b"s3cret", b"1767225600." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1767225600,v1={mac}"


def test_receiver_check_accepts_fresh_and_refuses_old_tampered_or_foreign() -> None:
    body = b'{"a":1}'
    sent = int(NOW.timestamp())
    header = channels.signature([b"new", b"old"], body, sent)
    assert channels.verify_signature(b"new", header, body, NOW)
    assert channels.verify_signature(b"old", header, body, NOW + dt.timedelta(minutes=4))
    assert not channels.verify_signature(b"new", header, body, NOW + dt.timedelta(minutes=6))
    assert not channels.verify_signature(b"new", header, body + b" ", NOW)
    assert not channels.verify_signature(b"other", header, body, NOW)
    assert not channels.verify_signature(b"new", "v1=abc", body, NOW)


def test_back_off_is_one_five_thirty_minutes_two_and_twelve_hours_then_gives_up() -> None:
    rng = random.Random(7)
    bases = [60, 300, 1800, 7200, 43200]
    for attempt, base in enumerate(bases, start=1):
        delay = retry_delay(attempt, rng)
        assert delay is not None
        assert base * 0.9 <= delay.total_seconds() <= base * 1.1
    assert retry_delay(len(bases) + 1) is None
    assert MAX_ATTEMPTS == 6


def test_jitter_spreads_retries() -> None:
    rng = random.Random(1)
    assert len({retry_delay(1, rng) for _ in range(20)}) > 1


def _mandate(contacts: list[OnCallContact], zone: str | None = None) -> Mandate:
    """A mandate with this rota, and opening hours in ``zone`` when given."""
    doc = yaml.safe_load(demo_mandate_text("plomberie-durand"))
    doc["on_call"]["contacts"] = [c.model_dump(by_alias=True, exclude_none=True) for c in contacts]
    if zone is None:
        doc.pop("hours", None)
        doc.pop("after_hours", None)
    else:
        doc["hours"]["timezone"] = zone
    return Mandate.model_validate(doc)


def test_on_call_now_uses_french_wall_clock_time_across_midnight() -> None:
    day, night = _contact("08:00", "18:00"), _contact("18:00", "08:00")
    both = _mandate([day, night])  # no hours: Paris
    # 17:30 UTC in winter is 18:30 in Paris: the night contact.
    assert on_call_now(both, dt.datetime(2026, 1, 15, 17, 30, tzinfo=dt.UTC)) == 1
    assert on_call_now(both, dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)) == 0
    # 16:30 UTC in summer is 18:30 in Paris too.
    assert on_call_now(both, dt.datetime(2026, 7, 15, 16, 30, tzinfo=dt.UTC)) == 1
    assert on_call_now(_mandate([_contact("22:00", "07:00")]), _paris(2026, 1, 15, 12)) is None


def test_on_call_now_reads_the_rota_in_the_zone_of_the_mandates_hours() -> None:
    # Martinique is UTC-4 all year: 19:00 there is midnight in Paris in winter.
    evening = _mandate([_contact("18:00", "23:00")], "America/Martinique")
    at = dt.datetime(2026, 1, 15, 23, 0, tzinfo=dt.UTC)
    assert on_call_now(evening, at) == 0
    assert on_call_now(_mandate([_contact("18:00", "23:00")]), at) is None  # read in Paris
    # The next window opens at 18:00 Martinique time, not Paris time.
    assert next_on_call_start(evening, dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)) == (
        dt.datetime(2026, 1, 15, 22, 0, tzinfo=dt.UTC)
    )


def test_nobody_on_call_waits_for_the_earliest_window_to_open() -> None:
    contacts = _mandate([_contact("22:00", "07:00"), _contact("18:00", "20:00")])
    assert next_on_call_start(contacts, _paris(2026, 1, 15, 12)) == _paris(2026, 1, 15, 18)
    assert next_on_call_start(contacts, _paris(2026, 1, 15, 20, 30)) == _paris(2026, 1, 15, 22)
    assert next_on_call_start(contacts, _paris(2026, 1, 15, 23)) == _paris(2026, 1, 16, 18)


def _rota(start: str, end: str, **rule: object) -> OnCallContact:
    """One contact's window with a weekly rule (``days``) or validity dates."""
    return OnCallContact.model_validate(
        {"name": "X", "phone": "+33600000001", "from": start, "to": end, **rule}
    )


def test_a_window_past_midnight_belongs_to_the_day_it_starts_on() -> None:
    # Friday nights only, 22:00 to 06:00 (16 January 2026 is a Friday).
    friday_night = _mandate([_rota("22:00", "06:00", days=["fri"])])
    assert on_call_now(friday_night, _paris(2026, 1, 16, 22)) == 0  # Friday 22:00
    assert on_call_now(friday_night, _paris(2026, 1, 17, 2)) == 0  # Saturday 02:00: Friday's
    assert on_call_now(friday_night, _paris(2026, 1, 16, 2)) is None  # Thursday's night
    assert on_call_now(friday_night, _paris(2026, 1, 17, 22)) is None  # Saturday 22:00
    assert on_call_now(friday_night, _paris(2026, 1, 17, 6)) is None  # the window has ended
    # A daytime window on Saturdays is not moved to the day before.
    saturday = _mandate([_rota("08:00", "12:00", days=["sat"])])
    assert on_call_now(saturday, _paris(2026, 1, 17, 9)) == 0
    assert on_call_now(saturday, _paris(2026, 1, 16, 9)) is None


def test_a_window_includes_its_first_minute_not_its_last() -> None:
    day, night = _contact("08:00", "18:00"), _contact("18:00", "08:00")
    both = _mandate([day, night])
    assert on_call_now(both, _paris(2026, 1, 15, 8)) == 0
    assert on_call_now(both, _paris(2026, 1, 15, 18)) == 1
    assert on_call_now(_mandate([day]), _paris(2026, 1, 15, 18)) is None
    assert on_call_now(_mandate([day]), _paris(2026, 1, 15, 17, 59)) == 0
    assert on_call_now(_mandate([night]), _paris(2026, 1, 15, 8)) is None
    assert on_call_now(_mandate([night]), _paris(2026, 1, 15, 7, 59)) == 0


def test_validity_dates_are_inclusive_and_read_on_the_day_the_window_starts() -> None:
    nights = _mandate(
        [
            _rota("22:00", "06:00", valid_from="2026-01-10", valid_until="2026-01-12"),
            _contact("00:00", "23:59"),
        ]
    )
    assert on_call_now(nights, _paris(2026, 1, 9, 23)) == 1  # before the first night
    assert on_call_now(nights, _paris(2026, 1, 10, 3)) == 1  # the 9th's night: not valid yet
    assert on_call_now(nights, _paris(2026, 1, 10, 22)) == 0  # the first night
    assert on_call_now(nights, _paris(2026, 1, 13, 3)) == 0  # the last night, after midnight
    assert on_call_now(nights, _paris(2026, 1, 13, 22)) == 1  # no longer valid
    only_from = _mandate([_rota("22:00", "06:00", valid_from="2026-01-10")])
    assert on_call_now(only_from, _paris(2026, 1, 9, 23)) is None
    assert on_call_now(only_from, _paris(2027, 1, 9, 23)) == 0
    only_until = _mandate([_rota("22:00", "06:00", valid_until="2026-01-12")])
    assert on_call_now(only_until, _paris(2025, 1, 9, 23)) == 0
    assert on_call_now(only_until, _paris(2026, 1, 13, 23)) is None


def test_without_an_on_call_list_nobody_is_on_call_and_no_window_opens() -> None:
    doc = yaml.safe_load(demo_mandate_text("plomberie-durand"))
    for key in ("on_call", "hours", "after_hours"):
        doc.pop(key)
    none = Mandate.model_validate(doc)
    assert on_call_now(none, _paris(2026, 1, 15, 23)) is None
    assert next_on_call_start(none, _paris(2026, 1, 15, 23)) is None


def test_the_next_window_is_strictly_after_the_moment_asked() -> None:
    contacts = _mandate([_contact("22:00", "07:00"), _contact("18:00", "20:00")])
    # At 18:00 sharp the 18:00 window is open already: the next one to open is 22:00.
    assert next_on_call_start(contacts, _paris(2026, 1, 15, 18)) == _paris(2026, 1, 15, 22)
    assert next_on_call_start(contacts, _paris(2026, 1, 15, 22)) == _paris(2026, 1, 16, 18)


@pytest.mark.parametrize("urgent", [True, False])
def test_texts_pass_the_mailers_personal_data_guard(urgent: bool) -> None:
    link = channels.portal_link("https://permanence.example/", MESSAGE_ID)
    assert link == f"https://permanence.example/portail/messages/{MESSAGE_ID}"
    texts = [
        channels.message_email("Plomberie Durand", link, urgent=urgent),
        channels.escalation_email("Plomberie Durand", link, urgent=urgent),
        *(channels.change_email("Plomberie Durand", link, e) for e in channels._CHANGE_FR),
    ]
    for text in texts:
        check_no_personal_data(Mail(to="c@client.example", subject=text.subject, text=text.body))
        assert link in text.body
    sms = channels.escalation_sms("Plomberie Durand", urgent=urgent)
    assert sms.startswith("Permanence : message ") and sms.endswith(", voir le portail")
    assert ("urgent" in sms) is urgent


def test_change_notice_webhook_names_the_change_and_no_content() -> None:
    body = channels.webhook_body(
        delivery_id=uuid.uuid4(),
        event=Event.ERASED,
        message_id=MESSAGE_ID,
        account_slug="plomberie-durand",
        link="https://x.example/portail/messages/1",
        changed_at=NOW,
    )
    data = json.loads(body)
    assert data["event"] == "message.erased"
    assert set(data) == {
        "event",
        "delivery_id",
        "message_id",
        "account",
        "portal_url",
        "changed_at",
    }
