"""Signing in through the pages (the form, its CSRF cookie) for page tests."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.web.conftest import PASSWORD, Person, World

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def page_login(world: World, who: Person) -> tuple[TestClient, str]:
    """A browser-like client signed in through /connexion; returns it and its CSRF token."""
    c = TestClient(world.app, follow_redirects=False)  # type: ignore[arg-type]
    form = c.get("/connexion")
    r = c.post(
        "/connexion",
        data={
            "email": who.email,
            "password": PASSWORD,
            "totp": who.code() or "",
            "csrf_token": csrf_of(form.text),
        },
    )
    assert r.status_code == 303, r.text
    home = c.get(r.headers["location"])
    assert home.status_code == 200, home.text
    return c, csrf_of(home.text)
