"""The evaluation grids on the demo and on an empty desk (issue 22's follow-ups): the demo ships
one recorded call — a generated WAV, encrypted on disk through the product's own download
path — that the demo supervisor evaluates and listens to; with nothing to evaluate, the page
says so and why, in French and in English."""

from __future__ import annotations

import re

import pyotp
import pytest
from fastapi.testclient import TestClient

from permanence.demo.loader import DEMO_PASSWORD, load_demo
from permanence.demo.recording import demo_audio
from tests.web.conftest import World
from tests.web.pages_helpers import page_login

EMPTY_FR = "Rien à évaluer : aucun appel décroché n'a d'enregistrement en attente de sa grille."
EMPTY_EN = "Nothing to evaluate: no answered call has a recording waiting for its grid."


def test_with_nothing_to_evaluate_the_page_says_so_and_why(world: World) -> None:
    supervisor, _ = page_login(world, world.supervisor)
    page = supervisor.get("/evaluations").text
    assert EMPTY_FR in page.replace("&#39;", "'")
    assert "le mandat active l'enregistrement" in page.replace("&#39;", "'")
    supervisor.cookies.set("permanence_lang", "en")
    english = supervisor.get("/evaluations").text
    assert EMPTY_EN in english and "whose mandate switches recording on" in english
    # An operator evaluates nothing: the page does not tell them what to evaluate.
    operator, _ = page_login(world, world.operator)
    mine = operator.get("/evaluations").text
    assert "Rien à évaluer" not in mine and "Aucune évaluation pour l" in mine.replace("&#39;", "'")


def test_the_demo_has_a_recorded_call_the_supervisor_evaluates_and_hears(world: World) -> None:
    from tests.conftest import PG_URL

    if PG_URL:
        pytest.skip("the demo loads into an empty database; covered on SQLite")
    from permanence import schema
    from permanence.config import Settings
    from permanence.runtime import Runtime
    from permanence.web.app import create_app
    from tests.conftest import TEST_MASTER_KEY

    fresh = world.rt.settings.data_dir / "demo.db"
    schema.upgrade(f"sqlite:///{fresh}")
    demo_rt = Runtime.from_settings(
        Settings(
            data_dir=world.rt.settings.data_dir,
            database_url=f"sqlite:///{fresh}",
            master_key=TEST_MASTER_KEY,
        )
    )
    try:
        lines = load_demo(demo_rt, calls_per_account=4)
        assert "account plomberie-durand: 1 recorded call to evaluate (/evaluations)" in lines
        uri = next(
            line.split("TOTP: ")[1] for line in lines if "superviseure@permanence.example" in line
        )
        client = TestClient(create_app(demo_rt))
        r = client.post(
            "/api/v1/auth/login",
            json={
                "email": "superviseure@permanence.example",
                "password": DEMO_PASSWORD,
                "totp": pyotp.parse_uri(uri).now(),  # type: ignore[attr-defined]
            },
        )
        assert r.status_code == 200, r.text
        page = client.get("/evaluations").text
        assert "Rien à évaluer" not in page
        links = re.findall(r'href="(/evaluations/[0-9a-f-]{36}/[0-9a-f-]{36})"', page)
        assert len(links) == 1, "one recorded call to evaluate"
        grid = client.get(links[0])
        assert grid.status_code == 200
        audio = re.search(r'<audio controls preload="none" src="([^"]+)"', grid.text)
        assert audio, "the grid plays the call's recording"
        heard = client.get(audio.group(1))
        assert heard.status_code == 200, heard.text
        assert heard.content == demo_audio() and heard.content.startswith(b"RIFF")
        # On disk, encrypted: the stored file is not the audio.
        stored = [p for p in demo_rt.settings.recordings_dir.rglob("*") if p.is_file()]
        assert len(stored) == 1
        assert b"RIFF" not in stored[0].read_bytes() and b"WAVE" not in stored[0].read_bytes()
    finally:
        demo_rt.close()
