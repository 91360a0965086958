"""``permanence routing check``, as an administrator runs it before a holiday: the account's
hours in words and where a call arriving at a given moment goes; bad input is one clear line."""

from __future__ import annotations

from pathlib import Path

from permanence.config import Settings
from permanence.runtime import Runtime
from tests.conftest import cli_env, run_cli
from tests.factories import demo_mandate_text, make_account


def test_an_administrator_checks_where_calls_go_on_christmas_day(
    rt: Runtime, settings: Settings, tmp_path: Path
) -> None:
    make_account(rt, "plomberie-durand")
    env = cli_env(settings)
    done = run_cli(
        env, "routing", "check", "--account", "plomberie-durand", "--at", "2026-12-25T10:00"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "plomberie-durand: du lundi au vendredi, 8 h 00 – 18 h 00; fermé les jours fériés (France)",
        "plomberie-durand: En dehors de ces horaires : renvoi vers la personne d'astreinte "
        "(messagerie vocale si personne n'est d'astreinte ou ne répond).",
        "2026-12-25 10:00 CET: after_hours_forward (holiday) -> on-call contact 3 (Marc Durand)",
    ]
    # The last Sunday of March: 08:45 on Monday is summer time, and in hours.
    summer = run_cli(
        env, "routing", "check", "--account", "plomberie-durand", "--at", "2026-03-30T08:45"
    )
    assert summer.stdout.splitlines()[-1] == "2026-03-30 08:45 CEST: in_hours (schedule)"

    # A draft file, checked before it is imported: its problems, named, and exit 1.
    draft = tmp_path / "draft.yaml"
    draft.write_text(
        demo_mandate_text("plomberie-durand").replace(
            'fri: ["08:00-18:00"]', 'fri: ["18:00-08:00"]'
        ),
        encoding="utf-8",
    )
    bad = run_cli(env, "routing", "check", "--file", str(draft))
    assert bad.returncode == 1
    assert bad.stderr.splitlines() == [
        "- hours.weekly: fri[0]: '18:00-08:00' ends before it starts; a range past midnight is "
        "written '18:00-08:00+1'",
        f"error: {draft}: 1 problem(s)",
    ]
    nobody = run_cli(env, "routing", "check", "--account", "nobody", "--at", "2026-12-25T10:00")
    assert (nobody.returncode, nobody.stderr.strip()) == (1, "error: no account 'nobody'")
    when = run_cli(env, "routing", "check", "--account", "plomberie-durand", "--at", "Noël")
    assert when.returncode == 2
    assert when.stderr.strip() == "error: --at must be a date and time like 2026-12-25T10:00"
