"""Breach clocks run in hours, through nights and weekends."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from permanence.breaches.clocks import cnil_clock, controller_clock

PARIS = ZoneInfo("Europe/Paris")


def test_breach_found_friday_evening_is_due_monday_evening() -> None:
    friday = dt.datetime(2026, 3, 6, 19, 30, tzinfo=PARIS)  # a Friday
    assert friday.weekday() == 4
    cnil = cnil_clock(friday.astimezone(dt.UTC), None)
    due = cnil.due_at.astimezone(PARIS)
    assert (due.strftime("%A"), due.hour, due.minute) == ("Monday", 19, 30)
    controllers = controller_clock(friday.astimezone(dt.UTC), None)
    assert controllers.due_at.astimezone(PARIS) == dt.datetime(2026, 3, 7, 19, 30, tzinfo=PARIS)


def test_seventy_two_hours_are_hours_across_a_clock_change() -> None:
    # 28-29 March 2026: Paris moves to summer time; 72 real hours end at 20:30 local.
    aware = dt.datetime(2026, 3, 27, 19, 30, tzinfo=PARIS)
    due = cnil_clock(aware.astimezone(dt.UTC), None).due_at.astimezone(PARIS)
    assert due == dt.datetime(2026, 3, 30, 20, 30, tzinfo=PARIS)


def test_controller_clock_states() -> None:
    aware = dt.datetime(2026, 3, 6, 18, 0, tzinfo=dt.UTC)
    running = controller_clock(aware, None)
    assert running.state(aware + dt.timedelta(hours=23)) == "running"
    assert running.state(aware + dt.timedelta(hours=25)) == "overdue"
    assert running.overdue(aware + dt.timedelta(hours=25))
    met = controller_clock(aware, aware + dt.timedelta(hours=5))
    assert met.state(aware + dt.timedelta(days=9)) == "met"
    late = controller_clock(aware, aware + dt.timedelta(hours=30))
    assert late.state(aware + dt.timedelta(days=9)) == "met_late"


def test_the_controllers_72_hours_start_when_it_is_told() -> None:
    aware = dt.datetime(2026, 3, 6, 18, 0, tzinfo=dt.UTC)
    told = aware + dt.timedelta(hours=10)
    assert cnil_clock(aware, told).due_at == told + dt.timedelta(hours=72)
