"""The mandate editor refuses impossible opening hours with a 4xx naming the place, and
stores nothing; saving even when asked to (the "enregistrer" action) writes no version."""

from __future__ import annotations

from permanence.accounts.service import mandate_version
from permanence.context import Role
from tests.factories import ctx_for
from tests.web.conftest import World
from tests.web.pages_helpers import page_login

BAD_HOURS = {
    "    fri:\n    - 08:00-18:00\n": "    fri:\n    - 08:00-18:00\n    - 12:00-13:00\n",
    "  timezone: Europe/Paris\n  weekly:": "  timezone: Europe/Nantes\n  weekly:",
    "    country: FR\n": "    country: ZZ\n",
}


def test_impossible_hours_are_refused_by_place_and_nothing_is_saved(world: World) -> None:
    admin, csrf = page_login(world, world.admin)
    url = f"/admin/comptes/{world.plumber.id}/mandat"
    text = admin.get(f"{url}.yaml").text
    broken = text
    for old, new in BAD_HOURS.items():
        assert old in broken
        broken = broken.replace(old, new, 1)
    for action in ("apercu", "enregistrer"):
        r = admin.post(url, data={"texte": broken, "action": action, "csrf_token": csrf})
        assert r.status_code == 422
        for problem in (
            "hours.weekly: fri[1]: &#39;12:00-13:00&#39; overlaps &#39;08:00-18:00&#39; (fri[0])",
            "hours.timezone: unknown time zone &#39;Europe/Nantes&#39;",
            "hours.holidays: country &#39;ZZ&#39; has no public holiday calendar",
        ):
            assert problem in r.text
        assert 'id="horaires"' not in r.text  # no schedule is shown for an invalid draft
    with world.rt.db.session(ctx_for(world.plumber.id, Role.ADMIN)) as s:
        row, mandate = mandate_version(s, world.plumber.id)
    assert row.version == 1 and mandate.hours is not None
    assert mandate.hours.timezone == "Europe/Paris"
    # The current version's schedule is what the editor shows.
    assert "du lundi au vendredi, 8 h 00 – 18 h 00" in admin.get(url).text
