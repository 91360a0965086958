"""The mandate's ``queue:`` settings (routing): defaults, bounds, unknown keys refused."""

from __future__ import annotations

import pytest
import yaml

from permanence.mandates.errors import MandateInvalid
from permanence.mandates.parsing import parse_mandate
from tests.factories import demo_mandate_text


def with_queue(queue: object) -> str:
    doc = yaml.safe_load(demo_mandate_text("plomberie-durand"))
    doc["queue"] = queue
    return yaml.safe_dump(doc, allow_unicode=True)


def test_defaults_and_a_priority_account() -> None:
    plain = parse_mandate(with_queue({}))
    assert (plain.queue.priority, plain.queue.max_wait_seconds) == (False, 180)
    assert plain.queue.callback_key is None
    demo = parse_mandate(demo_mandate_text("plomberie-durand"))
    assert (demo.queue.priority, demo.queue.max_wait_seconds) == (False, 90)
    urgent = parse_mandate(with_queue({"priority": True, "max_wait_seconds": 300}))
    assert (urgent.queue.priority, urgent.queue.max_wait_seconds) == (True, 300)


@pytest.mark.parametrize(
    "queue",
    [
        {"max_wait_seconds": 5},
        {"max_wait_seconds": 7200},
        {"priorty": True},
        {"callback_key": "12"},
        {"callback_key": "a"},
    ],
)
def test_impossible_queue_settings_are_refused_with_the_key_named(queue: object) -> None:
    with pytest.raises(MandateInvalid) as exc:
        parse_mandate(with_queue(queue))
    assert any("queue" in p for p in exc.value.problems), exc.value.problems


def test_the_demo_practice_and_firm_offer_a_call_back_key() -> None:
    practice = parse_mandate(demo_mandate_text("cabinet-lefevre")).queue
    firm = parse_mandate(demo_mandate_text("cabinet-moreau-avocats")).queue
    assert (practice.priority, practice.max_wait_seconds, practice.callback_key) == (True, 120, "1")
    assert (firm.priority, firm.max_wait_seconds, firm.callback_key) == (False, 240, "1")
    assert parse_mandate(with_queue({"callback_key": "#"})).queue.callback_key == "#"
