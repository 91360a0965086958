"""Small things every page gets right: a favicon, dates with their year when it is not this
year, the mandate diff naming both versions."""

from __future__ import annotations

import datetime as dt

import yaml

from permanence.accounts.service import import_mandate
from permanence.context import Role
from permanence.web.pages.render import TIMEZONE, environment
from tests.factories import ctx_for, demo_mandate_text
from tests.web.conftest import World
from tests.web.pages_helpers import page_login


def test_every_page_has_a_favicon(world: World) -> None:
    client, _csrf = page_login(world, world.client_plumber)
    page = client.get("/portail/messages").text
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.startswith("<svg")


def test_dates_show_the_year_only_when_it_is_not_this_year() -> None:
    now = dt.datetime.now(TIMEZONE)
    this_year = now.replace(month=3, day=4, hour=10, minute=5)
    last_year = this_year.replace(year=now.year - 1)
    fr = environment("fr")
    when = fr.from_string("{{ v|when }}")
    day = fr.from_string("{{ v|day }}")
    assert str(now.year) not in when.render(v=this_year)
    assert when.render(v=last_year).endswith(f"4 mars {now.year - 1}, 10:05")
    assert day.render(v=last_year.date()).endswith(f" 4 mars {now.year - 1}")
    assert str(now.year) not in day.render(v=this_year.date())
    en = environment("en").from_string("{{ v|when }}")
    assert str(now.year - 1) in en.render(v=last_year)


def test_the_mandate_diff_names_both_versions(world: World) -> None:
    doc = yaml.safe_load(demo_mandate_text("plomberie-durand"))
    doc["notice"]["version"] = "2"
    with world.rt.db.session(ctx_for(world.plumber.id, Role.ADMIN)) as s:
        import_mandate(s, doc, account_id=world.plumber.id)
    admin = world.login(world.admin)
    page = admin.get(f"/admin/comptes/{world.plumber.id}/mandat-diff?de=1&a=2").text
    assert "<h1>Mandat v1 → v2</h1>" in page
